"""Names and values a user types can never run as code, or make a wrong result look right: every name written
into markdown is escaped, every config number is finite and in reach, and ``inherit`` reads regular YAML files
only, with short errors that never echo a file."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_export import trained
from test_report import ROBUST, UNIFORM, fake_experiment
from test_score import tiny_experiment_cfg

from ugr.pipeline import config, score
from ugr.report import export, markdown, report, results

ODD_NAMES = ["a|b", "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))"]


# ----------------------------------------------------------------------------- markdown


def _cells(line: str) -> int:
    """How many cells GitHub reads in a table row: it splits at every ``|`` that is not backslash-escaped."""
    inner = line.strip()[1:-1]
    return len(re.split(r"(?<!\\)(?:\\\\)*\|", inner))


def _outside_code(text: str) -> str:
    """``text`` without its fenced code blocks and inline code spans (literal there, not markdown)."""
    text = re.sub(r"^(`{3,})[^\n]*\n.*?^\1\s*$", "", text, flags=re.S | re.M)
    return re.sub(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", "", text)


def _assert_inert(text: str) -> None:
    """Every table row as wide as its header, no raw HTML tag from a name, no link to javascript:."""
    tables, table = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            tables.append(table)
            table = []
    assert tables
    for table in tables:
        assert len({_cells(row) for row in table}) == 1, table
    assert "<img" not in text and "<script" not in text
    assert not re.search(r"(?<!\\)\]\(\s*javascript:", _outside_code(text), re.I), "a name formed a javascript: link"


def test_markdown_cell_escapes_table_html_and_link_syntax_on_one_line():
    assert markdown.markdown_cell("plain_name-1.0") == "plain_name-1.0"
    assert markdown.markdown_cell("a|b") == "a\\|b"
    assert markdown.markdown_cell("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert markdown.markdown_cell("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert markdown.markdown_cell("`code`\nnext & last") == "\\`code\\` next &amp; last"
    assert results.markdown_cell is markdown.markdown_cell  # one shared place


def test_a_code_span_or_fence_cannot_be_closed_by_the_text_inside():
    assert markdown.code_span("a`b") == "``a`b``"
    assert markdown.code_span("``x") == "``` ``x ```"
    assert markdown.fenced("```\nrm -rf /\n```", "sh").startswith("````sh\n")


@pytest.fixture
def odd_root(tmp_path):
    """Scored experiments named to break a page: a pipe, an HTML tag, a javascript: link (the first the baseline)."""
    rng = np.random.default_rng(0)
    classes = ["speech", "dog"] * 50
    for i, name in enumerate(ODD_NAMES):
        fake_experiment(
            tmp_path,
            name,
            rng.normal(5 - i, 6, 100),
            classes,
            UNIFORM if i == 0 else ROBUST,
            [{0: 1.0 + i, 1: 2.0 + i}],
        )
    return tmp_path


def test_report_md_with_odd_experiment_names_keeps_every_row_as_wide_as_its_header(odd_root):
    text = report.report(odd_root, ODD_NAMES).read_text()
    _assert_inert(text)
    for name in ODD_NAMES:
        assert f"| {markdown.markdown_cell(name)} |" in text
    assert "### Paired comparison against a\\|b (SI-SDRi)" in text


def test_results_md_with_odd_experiment_names_keeps_every_row_as_wide_as_its_header(odd_root):
    text = results.build(odd_root, ODD_NAMES, recipe="<b>[r](javascript:x)</b>", command="./run.sh\n```\nx")
    _assert_inert(text)
    assert "# RESULTS: &lt;b&gt;\\[r\\](javascript:x)&lt;/b&gt;" in text
    assert "````sh\n./run.sh\n```\nx\n````" in text  # the command cannot close its fence


@pytest.mark.parametrize("name", ODD_NAMES)
def test_the_model_card_of_an_oddly_named_experiment_is_inert(name, tmp_path):
    cfg = tiny_experiment_cfg()
    exp_dir = trained(tmp_path / "exp" / name, cfg)
    classes = ["speech", "dog"] * 5
    stats = fake_experiment(tmp_path / "scored", name, np.linspace(-3, 9, 10), classes, UNIFORM, [{0: 1.0}])
    (exp_dir / "scores").mkdir()
    (exp_dir / "scores" / score.STATS_FILE).write_text(json.dumps(stats))
    _, card_path = export.export(exp_dir, tmp_path / "out" / "m.pth")
    card = card_path.read_text()
    _assert_inert(card)
    assert f"# {markdown.markdown_cell(name)}: asteroid" in card
    assert f"| {markdown.markdown_cell(name)} | uniform |" in card


def test_a_licence_link_is_made_only_of_an_http_address():
    data = {
        "known": True,
        "licenses": [
            {
                "title": "[t](javascript:alert(1))",
                "title_link": "javascript:alert(1)",
                "license": "<b>L</b>",
                "license_link": "https://example.org/licence",
                "non_commercial": False,
            }
        ],
    }
    section = export._licence_section(data)
    _assert_inert(section)
    assert "| \\[t\\](javascript:alert(1)) | [&lt;b&gt;L&lt;/b&gt;](https://example.org/licence) |" in section


# ----------------------------------------------------------------------------- config numbers

CONF = Path(__file__).resolve().parents[1] / "egs" / "wsj0_esc50" / "conf"


@pytest.fixture
def base(tmp_path) -> Path:
    """The CPU preset resolved into one file."""
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(config.load(CONF / "cpu" / "base_cpu.yaml").to_dict()))
    return path


def _refused(tmp_path: Path, text: str) -> str:
    """The one error of loading a config that inherits base.yaml and adds ``text`` (YAML)."""
    path = tmp_path / "bad.yaml"
    path.write_text("inherit: base.yaml\n" + text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert message.startswith(str(path)), message  # the file named
    return message


@pytest.mark.parametrize(
    "text, message",
    [
        ("training:\n  lr: .inf\n", "training.lr must be a finite positive number, got inf"),
        ("training:\n  lr: .nan\n", "training.lr must be a finite positive number, got nan"),
        ("training:\n  clip: .inf\n", "training.clip must be a finite positive number, got inf"),
        ("data:\n  segment: .inf\n", "data.segment must be a finite positive number, got inf"),
        ("data:\n  segment: .nan\n", "data.segment must be a finite positive number, got nan"),
        ("data:\n  snr_range: [-.inf, 5]\n", "data.snr_range must be [low_db, high_db], two finite numbers"),
        ("data:\n  snr_range: [.nan, .nan]\n", "data.snr_range must be [low_db, high_db], two finite numbers"),
        ("data:\n  priors: {speech+env: .inf}\n", "data.priors must map mixture types"),
        ("data:\n  priors: {speech+env: .nan}\n", "data.priors must map mixture types"),
        ("model:\n  sample_rate: .inf\n", "bad 'model' section"),
    ],
)
def test_every_config_number_must_be_finite(tmp_path, base, text, message):
    assert message in _refused(tmp_path, text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("training:\n  lr: 1e6\n", "training.lr must be at most 1; a learning rate above 1 diverges"),
        (
            "data:\n  sample_rate: 999999937\nmodel:\n  sample_rate: 999999937\n",
            "data.sample_rate must be between 1000 and 192000 Hz",
        ),
        (
            "data:\n  sample_rate: 999\nmodel:\n  sample_rate: 999\n",
            "data.sample_rate must be between 1000 and 192000 Hz",
        ),
        ("data:\n  segment: 3600\n", "data.segment must be at most 60 seconds"),
    ],
)
def test_values_the_code_would_allocate_or_diverge_from_are_bounded(tmp_path, base, text, message):
    assert message in _refused(tmp_path, text)


def test_the_bounds_keep_what_a_user_means():
    cfg = config.load(
        CONF / "cpu" / "base_cpu.yaml",
        config.parse_overrides(["training.lr=1 data.sample_rate=48000 model.sample_rate=48000 data.segment=60"]),
    )
    assert (cfg.training.lr, cfg.data.sample_rate, cfg.data.segment) == (1, 48000, 60)


# ----------------------------------------------------------------------------- inherit

SECRET = "root:$6$Zx9secretHASHvalue$abc:19000:0:99999:7:::"


def _inherit_error(tmp_path: Path, target: str) -> str:
    path = tmp_path / "child.yaml"
    path.write_text(f"inherit: {target}\n")
    started = time.monotonic()
    result: dict = {}

    def load() -> None:
        try:
            config.load(path)
        except config.ConfigError as err:
            result["error"] = str(err)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"inherit: {target} hangs"
    assert time.monotonic() - started < 10
    assert "error" in result, f"inherit: {target} was accepted"
    assert "\n" not in result["error"]  # one line
    return result["error"]


@pytest.mark.parametrize(
    "name, content",
    [
        ("shadow", SECRET + "\ndaemon:*:19000:0:99999:7:::\n"),  # not named .yaml
        ("secrets.yaml", SECRET + "\n  bad: [\n"),  # a syntax error
        ("secrets.yml", f"- {SECRET}\n- second line\n"),  # not a mapping
        ("tabs.yaml", f"key: {SECRET}\n\tindented: {SECRET}\n"),  # a character YAML refuses
        ("tag.yaml", f"!{SECRET} x\n"),  # an unknown tag (quoted by YAML)
    ],
)
def test_an_inherited_file_is_never_echoed_into_the_error(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    error = _inherit_error(tmp_path, str(tmp_path / name))
    assert not any(part in error for part in ("Zx9secretHASH", "root:", "daemon", "19000", "second line")), error
    assert str(tmp_path / name) in error


def test_inherit_errors_name_the_file_and_where_in_it(tmp_path):
    (tmp_path / "shadow").write_text(SECRET + "\n")
    assert _inherit_error(tmp_path, str(tmp_path / "shadow")) == (
        f"{tmp_path / 'shadow'}: is not a config (its name does not end in .yaml or .yml); inherit a .yaml config"
    )
    (tmp_path / "broken.yaml").write_text("data:\n  sample_rate: [8000\n")
    assert _inherit_error(tmp_path, "broken.yaml").startswith(
        f"{tmp_path / 'broken.yaml'}: not valid YAML at line 3, column 1 ("
    )
    (tmp_path / "list.yaml").write_text("\n- a\n- b\n")
    assert _inherit_error(tmp_path, "list.yaml") == (
        f"{tmp_path / 'list.yaml'}: must be a mapping of sections ['data', 'model', 'weighting', 'training', "
        f"'scoring'], got a list at line 2, column 1"
    )


def test_inherit_of_a_device_a_fifo_or_a_folder_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    (tmp_path / "folder.yaml").mkdir()
    for target in ("/dev/zero", str(fifo), str(tmp_path / "folder.yaml")):
        assert _inherit_error(tmp_path, target) == (
            f"{Path(target).resolve()}: is not a regular file (a device, a FIFO or a folder); inherit a .yaml config"
        )


def test_inherit_of_a_file_too_large_to_be_a_config_is_refused(tmp_path):
    with open(tmp_path / "huge.yaml", "wb") as handle:
        handle.truncate(config.MAX_CONFIG_BYTES + 1)  # sparse: no disk used
    error = _inherit_error(tmp_path, "huge.yaml")
    assert "too large to be a config" in error and str(tmp_path / "huge.yaml") in error
