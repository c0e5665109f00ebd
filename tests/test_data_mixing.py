"""Mixture lists (byte-identical), mixing maths, class labels, epoch keys and worker seeding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from test_data_helpers import make_esc50, make_wsj0
from ugr.data import EpochSampler, ListedMixtures, OnTheFlyMixtures, coarse_class, collate_mixtures
from ugr.data.mixing import SourcePool, draw_mixture
from ugr.data.mixtures import main as mixtures_main
from ugr.data.prepare import prepare

SETS = {"si_tr_s": ["01a", "02b"], "si_dt_05": ["20c", "21d"], "si_et_05": ["40e", "41f"]}
SEGMENT = 1.0  # seconds: short keeps the tests fast; the maths does not depend on it


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    prepare(root / "data", wsj0=make_wsj0(root, SETS), esc50=make_esc50(root / "esc50", clips_per_fold=1,
                                                                         seconds=0.5), sample_rate=8000)
    return root / "data"


def _snr_db(sources: torch.Tensor) -> float:
    power = sources.double().pow(2).mean(dim=-1)
    return float(10 * torch.log10(power[0] / power[1]))


def test_coarse_class():
    assert coarse_class("speech") == "speech" and coarse_class("dog") == "env"


def test_mixing_maths_and_labels(data_dir):
    data = OnTheFlyMixtures(data_dir, "train", num_mixtures=40, seed=3, segment=SEGMENT,
                            priors={"speech+env": 1, "env+env": 1, "speech+speech": 1})
    kinds = set()
    for key in range(40):
        item = data[key]
        mixture, sources = item["mixture"], item["sources"]
        assert mixture.shape == (8000,) and sources.shape == (2, 8000) and mixture.dtype == torch.float32
        assert torch.equal(mixture, sources.sum(0))
        rng = np.random.default_rng(np.random.SeedSequence([3, key]))
        spec, _ = draw_mixture(data.pool, rng, data.priors, 8000, (-5.0, 5.0))
        assert abs(_snr_db(sources) - spec.snr_db) < 0.01
        assert -5 <= spec.snr_db <= 5
        assert abs(float(sources[1].double().pow(2).mean()) - 1.0) < 1e-4  # unit power before the SNR gain
        assert item["coarse"] == [coarse_class(c) for c in item["classes"]]
        assert item["classes"] == [c.fine for c in spec.sources]
        first, second = (data.pool.by_id[c.id] for c in spec.sources)
        assert first.group != second.group  # different speaker / class
        kinds.add(tuple(item["coarse"]))
    assert kinds == {("speech", "speech"), ("env", "env"), ("speech", "env")}


def test_normalize_keeps_the_sum_and_the_snr(data_dir):
    plain = OnTheFlyMixtures(data_dir, num_mixtures=4, seed=1, segment=SEGMENT)
    normed = OnTheFlyMixtures(data_dir, num_mixtures=4, seed=1, segment=SEGMENT, normalize=True)
    a, b = plain[2], normed[2]
    assert torch.equal(b["mixture"], b["sources"].sum(0))
    assert abs(float(b["mixture"].double().pow(2).mean()) - 1.0) < 1e-4
    assert abs(_snr_db(a["sources"]) - _snr_db(b["sources"])) < 1e-3


def test_reproducible_from_seed_and_key_only(data_dir):
    one = OnTheFlyMixtures(data_dir, num_mixtures=8, seed=7, segment=SEGMENT)
    two = OnTheFlyMixtures(data_dir, num_mixtures=8, seed=7, segment=SEGMENT)
    other = OnTheFlyMixtures(data_dir, num_mixtures=8, seed=8, segment=SEGMENT)
    _ = two[5]  # drawing other keys first changes nothing
    assert torch.equal(one[3]["mixture"], two[3]["mixture"])
    assert not torch.equal(one[3]["mixture"], other[3]["mixture"])


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
    data = OnTheFlyMixtures(data_dir, num_mixtures=8, seed=11, segment=SEGMENT)
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
    assert batch["sources"].shape == (2, 2, 8000) and len(batch["classes"]) == 2 and len(batch["classes"][0]) == 2


def test_mixture_list_is_byte_identical_and_loads(data_dir, tmp_path):
    args = ["--data", str(data_dir), "--split", "valid", "--num", "12", "--seed", "5", "--segment", str(SEGMENT),
            "--snr", "-5", "5", "--priors", "env+env=1", "speech+env=1"]
    assert mixtures_main(args + ["--out", str(tmp_path / "a.tsv")]) == 0
    assert mixtures_main(args + ["--out", str(tmp_path / "b.tsv")]) == 0
    mixtures_main(args[:7] + ["6"] + args[8:] + ["--out", str(tmp_path / "c.tsv")])
    a = (tmp_path / "a.tsv").read_bytes()
    assert a == (tmp_path / "b.tsv").read_bytes() and a != (tmp_path / "c.tsv").read_bytes()
    listed = ListedMixtures(data_dir, tmp_path / "a.tsv", sample_rate=8000)
    assert len(listed) == 12
    lines = a.decode().splitlines()[3:]
    for index in (0, 11):
        fields = lines[index].split("\t")
        item = listed[index]
        assert item["id"] == fields[0] and item["classes"] == [fields[3], fields[6]]
        assert torch.equal(item["mixture"], item["sources"].sum(0))
        assert abs(_snr_db(item["sources"]) - float(fields[7])) < 0.01
    pool = SourcePool(data_dir, "valid", 8000)
    assert all(pool.by_id[line.split("\t")[1]].split == "valid" for line in lines)


def test_clear_errors(data_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown mixture type"):
        OnTheFlyMixtures(data_dir, num_mixtures=2, seed=0, priors={"speech+noise": 1})
    with pytest.raises(ValueError, match="Hz"):
        OnTheFlyMixtures(data_dir, num_mixtures=2, seed=0, sample_rate=16000)
    (tmp_path / "bad.tsv").write_text("not a list\n")
    with pytest.raises(ValueError, match="not a mixture list"):
        ListedMixtures(data_dir, tmp_path / "bad.tsv")
