"""Mixing: settings, maths, labels, independent streams per split and epoch, fixed lists, published mixtures."""

from __future__ import annotations

import pytest
import torch
from test_corpora import make_2mix
from test_data_helpers import make_esc50, make_wsj0
from torch.utils.data import DataLoader

from ugr.data.dataset import EpochSampler, ListedMixtures, OnTheFlyMixtures, PublishedCrops, collate_mixtures
from ugr.data.eval_list import StaleListError, read_eval_list, write_drawn_list, write_published_list
from ugr.data.mixing import MixingSettings, SourcePool, draw_mixture, parse_pair, stream
from ugr.data.prepare import CorpusInput, prepare
from ugr.pipeline.config import DataConfig

SETS = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}
SEGMENT = 1.0  # seconds: short keeps the tests fast; the maths does not depend on it


def settings(priors=None, seed=3, normalize=False, snr=(-5, 5), rate=8000) -> MixingSettings:
    data = DataConfig.from_section(
        {
            "sample_rate": rate,
            "segment": SEGMENT,
            "snr_range": list(snr),
            "normalize": normalize,
            "seed": seed,
            "priors": priors or {"speech+env": 1, "env+env": 1, "speech+speech": 1},
            "train_from": "sources",
            "eval_from": "sources",
            "train_mixtures_per_epoch": 8,
            "valid_mixtures": 4,
            "test_mixtures": 4,
        },
        "settings()",
    )
    return data.mixing_settings()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    wsj0, esc50 = make_wsj0(root, SETS), make_esc50(root / "esc50", clips_per_fold=2, seconds=0.5)
    prepare(root / "data", [CorpusInput("wsj0", str(wsj0)), CorpusInput("esc50", str(esc50))], fs=8000)
    return root / "data"


def _snr_db(sources: torch.Tensor) -> float:
    power = sources.double().pow(2).mean(dim=-1)
    return float(10 * torch.log10(power[0] / power[1]))


def test_mixture_types_are_pairs_of_coarse_classes():
    assert parse_pair("speech+env") == ("speech", "env") and parse_pair("sound+sound") == ("sound", "sound")
    for bad in ("speech", "a+b+c", "+env"):
        with pytest.raises(ValueError, match="two coarse classes"):
            parse_pair(bad)
    made = settings({"speech+env": 3, "env+env": 1, "speech+speech": 0})
    assert made.priors == ((("speech", "env"), 0.75), (("env", "env"), 0.25))


def test_mixing_maths_and_labels(data_dir):
    mixing = settings()
    data = OnTheFlyMixtures(data_dir, "train", mixing, num_mixtures=40)
    kinds = set()
    for key in range(40):
        item = data[key]
        mixture, sources = item["mixture"], item["sources"]
        assert mixture.shape == (8000,) and sources.shape == (2, 8000) and mixture.dtype == torch.float32
        assert torch.equal(mixture, sources.sum(0))
        spec, _ = draw_mixture(data.pool, stream(3, "train", key), mixing)
        assert abs(_snr_db(sources) - spec.snr_db) < 0.01
        assert -5 <= spec.snr_db <= 5
        assert abs(float(sources[1].double().pow(2).mean()) - 1.0) < 1e-4  # unit power before the SNR gain
        first, second = (data.pool.by_id[c.id] for c in spec.sources)
        assert item["classes"] == [first.fine, second.fine] and item["coarse"] == [first.coarse, second.coarse]
        assert first.group != second.group  # different speaker / class
        kinds.add(tuple(item["coarse"]))
    assert kinds == {("speech", "speech"), ("env", "env"), ("speech", "env")}


def test_normalize_keeps_the_sum_and_the_snr(data_dir):
    plain = OnTheFlyMixtures(data_dir, "train", settings(seed=1), num_mixtures=4)
    normed = OnTheFlyMixtures(data_dir, "train", settings(seed=1, normalize=True), num_mixtures=4)
    a, b = plain[2], normed[2]
    assert torch.equal(b["mixture"], b["sources"].sum(0))
    assert abs(float(b["mixture"].double().pow(2).mean()) - 1.0) < 1e-4
    assert abs(_snr_db(a["sources"]) - _snr_db(b["sources"])) < 1e-3


def test_reproducible_from_seed_and_key_only(data_dir):
    one = OnTheFlyMixtures(data_dir, "train", settings(seed=7), num_mixtures=8)
    two = OnTheFlyMixtures(data_dir, "train", settings(seed=7), num_mixtures=8)
    other = OnTheFlyMixtures(data_dir, "train", settings(seed=8), num_mixtures=8)
    _ = two[5]  # drawing other keys first changes nothing
    assert torch.equal(one[3]["mixture"], two[3]["mixture"])
    assert not torch.equal(one[3]["mixture"], other[3]["mixture"])


def test_validation_test_and_training_draws_share_no_random_stream(data_dir, tmp_path):
    """Same seed, same settings, same index: the splits must not repeat each other's offsets and SNRs."""
    mixing = settings({"env+env": 1, "speech+env": 1}, seed=0)
    n = 200
    draws = {}
    for split in ("valid", "test"):
        path = write_drawn_list(data_dir, split, tmp_path / f"{split}.csv", num=n, settings=mixing)
        draws[split] = [
            (spec.sources[0].offset, spec.sources[1].offset, round(spec.snr_db, 6))
            for _, spec in read_eval_list(path).drawn
        ]
    pool = SourcePool(data_dir, "train", 8000)
    for epoch in (0, 1):
        keys = list(EpochSampler(n)) if epoch == 0 else [n + i for i in range(n)]
        specs = [draw_mixture(pool, stream(0, "train", k), mixing)[0] for k in keys]
        draws[f"train{epoch}"] = [(s.sources[0].offset, s.sources[1].offset, round(s.snr_db, 6)) for s in specs]
    names = list(draws)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            same_snr = sum(x[2] == y[2] for x, y in zip(draws[a], draws[b]))
            same_offsets = sum(x[:2] == y[:2] and x[0] > 0 for x, y in zip(draws[a], draws[b]))
            # Continuous SNRs never coincide by chance; positive crop offsets of 1 s segments in files of
            # 0.5-5 s almost never do.
            assert same_snr == 0, (a, b)
            assert same_offsets <= 2, (a, b, same_offsets)


def test_epoch_sampler_fresh_keys_and_disjoint_ranks():
    sampler = EpochSampler(10)
    assert list(sampler) == list(range(10))
    sampler.set_epoch(2)
    assert list(sampler) == list(range(20, 30))
    ranks = [EpochSampler(10, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(1)
    keys = [list(r) for r in ranks]
    assert sorted(sum(keys, [])) == list(range(10, 20)) and [len(r) for r in ranks] == [len(k) for k in keys]


def test_workers_draw_the_same_distinct_mixtures(data_dir):
    data = OnTheFlyMixtures(data_dir, "train", settings(seed=11), num_mixtures=8)
    sampler = EpochSampler(8)
    sampler.set_epoch(1)

    def run(workers):
        loader = DataLoader(data, batch_size=2, sampler=sampler, num_workers=workers, collate_fn=collate_mixtures)
        return [batch for batch in loader]

    single, multi = run(0), run(2)
    assert [b["id"] for b in single] == [b["id"] for b in multi]
    assert all(torch.equal(s["mixture"], m["mixture"]) for s, m in zip(single, multi))
    mixtures = torch.cat([b["mixture"] for b in multi])
    assert mixtures.shape == (8, 8000)
    assert len({tuple(m.tolist()) for m in mixtures}) == 8  # no repeated random stream across workers
    batch = multi[0]
    assert batch["sources"].shape == (2, 2, 8000) and len(batch["classes"]) == 2 and len(batch["coarse"][0]) == 2


def test_drawn_list_is_byte_identical_and_loads(data_dir, tmp_path):
    mixing = settings({"env+env": 1, "speech+env": 1}, seed=5)
    a = write_drawn_list(data_dir, "valid", tmp_path / "a.csv", num=12, settings=mixing).read_bytes()
    b = write_drawn_list(data_dir, "valid", tmp_path / "b.csv", num=12, settings=mixing).read_bytes()
    c = write_drawn_list(data_dir, "valid", tmp_path / "c.csv", num=12, settings=settings(seed=6)).read_bytes()
    assert a == b and a != c
    listed = ListedMixtures(data_dir, tmp_path / "a.csv", sample_rate=8000)
    assert len(listed) == 12 and listed.fixed_length
    lines = a.decode().splitlines()[3:]
    for index in (0, 11):
        fields = lines[index].split("\t")
        item = listed[index]
        assert item["id"] == fields[0] and item["classes"] == [fields[3], fields[7]]
        assert item["coarse"] == [fields[4], fields[8]]
        assert torch.equal(item["mixture"], item["sources"].sum(0))
        assert abs(_snr_db(item["sources"]) - float(fields[9])) < 0.01
    pool = SourcePool(data_dir, "valid", 8000)
    assert all(line.split("\t")[1] in pool.by_id for line in lines)


def test_lists_of_an_older_format_or_a_reprepared_folder_are_refused(data_dir, tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("# ugr-mixture-list v1\n# split=valid\nid\tsrc1\n")
    with pytest.raises(StaleListError, match="older format v1"):
        ListedMixtures(data_dir, old, sample_rate=8000)
    path = write_drawn_list(data_dir, "test", tmp_path / "t.csv", num=3, settings=settings())
    manifest = data_dir / "manifests" / "test.tsv"
    original = manifest.read_text()
    try:
        manifest.write_text(original + original.splitlines()[-1].replace("\t", "x\t", 1) + "\n")
        with pytest.raises(StaleListError, match="prepared again"):
            ListedMixtures(data_dir, path, sample_rate=8000)
    finally:
        manifest.write_text(original)


def test_published_mixtures_as_lists_and_as_training_crops(tmp_path):
    tree = make_2mix(tmp_path / "wsj0-2mix")
    prepare(tmp_path / "data", [CorpusInput("wsj0_2mix", str(tree))], fs=8000, min_seconds=0.01)
    path = write_published_list(tmp_path / "data", "train", tmp_path / "tr.csv", num=2, sample_rate=8000)
    listed = ListedMixtures(tmp_path / "data", path, sample_rate=8000)
    assert not listed.fixed_length and len(listed) == 2
    item = listed[0]
    assert item["id"] == "011a0101_1.2_022b0202_-1.2" and item["mixture"].shape == (450,)
    assert item["sources"].shape == (2, 450) and item["coarse"] == ["speech", "speech"]
    with pytest.raises(ValueError, match="3 published train mixtures, but 4 asked"):
        write_published_list(tmp_path / "data", "train", tmp_path / "x.csv", num=4, sample_rate=8000)
    crops = PublishedCrops(tmp_path / "data", "train", settings(seed=2), num_mixtures=10)
    seen = set()
    for key in range(10):
        crop = crops[key]
        assert crop["mixture"].shape == (8000,) and crop["sources"].shape == (2, 8000)
        seen.add(crop["id"].split("@")[0])
        again = crops[key]
        assert torch.equal(crop["mixture"], again["mixture"])
    assert len(seen) >= 2
    with pytest.raises(ValueError, match="no coarse class 'env'"):
        OnTheFlyMixtures(tmp_path / "data", "train", settings({"speech+env": 1}), num_mixtures=2)


def test_clear_errors(data_dir, tmp_path):
    with pytest.raises(ValueError, match="no coarse class 'noise'"):
        OnTheFlyMixtures(data_dir, "train", settings({"speech+noise": 1}), num_mixtures=2)
    with pytest.raises(ValueError, match="16000 Hz was asked"):
        OnTheFlyMixtures(data_dir, "train", settings(rate=16000), num_mixtures=2)
    (tmp_path / "bad.tsv").write_text("not a list\n")
    with pytest.raises(ValueError, match="not an evaluation list"):
        ListedMixtures(data_dir, tmp_path / "bad.tsv", sample_rate=8000)
