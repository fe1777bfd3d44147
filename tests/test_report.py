"""The report: synthetic run folders, evaluations and analyses in the real formats.

Library behaviour is tested through :func:`unsupseg.report.build_report` and the
renderers; a few tests run ``unsupseg report`` for its arguments, exit codes and files.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from unsupseg.cli import main
from unsupseg.errors import ConfigError, RunFolderError
from unsupseg.report import (
    Code,
    Figure,
    Heading,
    Paragraph,
    Table,
    build_report,
    render_html,
    render_markdown,
)
from unsupseg.report.document import format_duration

METRICS_CSV = """\
epoch,step,split,loss,loss_seg,loss_aux,unique_labels,lr,seconds
1,2,train_step,2.5,1.5,1,9,0.01,4.5
1,4,train,2.34567,1.23456,1.11111,8.5,0.01,10.5
1,4,val,2.01234,1.10987,0.902468,7.25,0.01,11.76
2,6,train_step,1.9,1.0,0.9,7,0.005,15.5
2,8,train,1.87654,0.98766,0.888889,6.126,0.005,20.5
2,8,val,1.54321,0.81234,0.73087,5.5,0.005,21.04
"""
# The two epoch rows as the report prints them (4 decimals, labels 2, seconds 1).
EPOCH_ROWS = (
    "| 1 | 4 | 2.3457 | 1.2346 | 1.1111 | 2.0123 | 1.1099 | 0.9025 | 8.50 | 7.25 | 0.01 | 11.8 |",
    "| 2 | 8 | 1.8765 | 0.9877 | 0.8889 | 1.5432 | 0.8123 | 0.7309 | 6.13 | 5.50 | 0.005 | 21.0 |",
)
IMAGE_REFERENCE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path.read_bytes()


def make_run(
    folder: Path, *, metrics: bool = True, figures: bool = True, epochs: int = 4
) -> dict[str, bytes]:
    """A run folder as ``unsupseg train`` writes it; returns the figures' bytes by name."""
    folder.mkdir(parents=True)
    config = {
        "settings": {
            "preset": "autoencoder-cifar10",
            "out": str(folder),
            "dataset": "folder",
            "split": "train",
            "val_split": "val",
            "limit": None,
            "epochs": epochs,
            "lr": 0.01,
            "batch_size": 4,
            "optimizer": "adam",
            "momentum": 0.9,
            "lr_step_size": 1,
            "lr_gamma": 0.5,
            "aux_weight": 1.0,
            "q": 16,
            "crop_size": None,
            "image_size": 32,
            "refine": "superpixel-vote",
            "seed": 7,
            "device": "cpu",
            "precision": "32",
        },
        "preset": {"name": "autoencoder-cifar10", "architecture": "autoencoder"},
        "train_images": 8,
        "val_images": 4,
        "parameters": 225883,
        "world_size": 1,
        "resumed_from": None,
        "versions": {"unsupseg": "0.1.0", "torch": "2.0"},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if metrics:
        (folder / "metrics.csv").write_text(METRICS_CSV)
    images = {}
    if figures:
        for index, name in enumerate(("loss_curves", "unique_labels", "merging")):
            images[name] = write_png(folder / "figures" / f"{name}.png", (40 * index, 90, 200))
        images["panel_epoch001"] = write_png(folder / "figures" / "panel_epoch001.png", (1, 2, 3))
        images["panel_epoch002"] = write_png(folder / "figures" / "panel_epoch002.png", (9, 8, 7))
    return images


BSDS_SUMMARY = {
    "n_images": 3,
    "miou_all": 0.41234,
    "miou_fine": 0.35678,
    "miou_coarse": 0.52346,
    "covering": 0.48766,
    "pri": 0.71234,
    "vi": 2.34567,
    "boundary_ods": 0.45678,
    "boundary_ois": 0.49876,
    "mean_segments": 123.46,
    "mean_labels": 12.34,
    "seconds_per_image": 0.98765,
    "n_failed": 0,
    "failed": [],
    "settings": {"dataset": "bsds500", "split": "val", "method": "kmeans", "checkpoint": None},
    "per_image_csv": "/somewhere/per_image.csv",
}
MSRC_SUMMARY = {
    "n_images": 5,
    "miou_per_image": 0.55551,
    "miou_hungarian": 0.33332,
    "pixel_accuracy": 0.77771,
    "mean_segments": 45.6,
    "mean_labels": 6.7,
    "seconds_per_image": 0.123,
    "n_failed": 1,
    "failed": [{"id": "x", "error": "boom"}],
    "settings": {
        "dataset": "msrc",
        "split": "all",
        "method": None,
        "checkpoint": "/x/runs/tiny-run/checkpoints/model-best.pt",
        "refine": True,
    },
}


def make_analysis(folder: Path, kind: str, *, figures: bool = True) -> bytes | None:
    """A folder following the summary.json contract of the analysis commands."""
    folder.mkdir(parents=True)
    summary = {
        "kind": kind,
        "title": f"{kind} of 3 seeds <&>",
        "split": "val",
        "runs": [{"run": "a", "seed": 0}],
        "tables": [
            {
                "title": f"{kind} per group",
                "columns": ["group", "first", "last"],
                "rows": [["seed|a", 12.5, 3.25], ["b-c", 10, None]],
            }
        ],
        "figures": [],
    }
    data = None
    if figures:
        data = write_png(folder / "plots" / "curve.png", (200, 10, 10))
        summary["figures"] = [
            {"title": "curve", "path": "plots/curve.png"},
            {"title": "missing plot", "path": "gone.png"},
        ]
    (folder / "summary.json").write_text(json.dumps(summary))
    return data


BENCH = {
    "benchmark": "train",
    "steps_timed": 3,
    "rows": [
        {"preset": "base-cifar10", "device": "cpu", "images_per_second": 123.4},
        {"preset": "base-bsds500", "device": "cpu", "images_per_second": 7.5},
    ],
    "processor": "x86_64",
    "cuda_device": None,
}


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> dict:
    """One report with every part: a run, two evaluations, two analyses and a benchmark."""
    root = tmp_path_factory.mktemp("report")
    run = root / "runs" / "tiny-run"
    images = make_run(run)
    (root / "bsds.json").write_text(json.dumps(BSDS_SUMMARY))
    (root / "msrc.json").write_text(json.dumps(MSRC_SUMMARY))
    curve = make_analysis(root / "stability", "stability")
    make_analysis(root / "post", "postprocess", figures=False)
    (root / "bench.json").write_text(json.dumps(BENCH))
    out = root / "out"
    title = 'Runs <script>alert("x")</script> & 50% | *bold*'
    result = build_report(
        [run],
        evaluations=[root / "bsds.json", root / "msrc.json"],
        stability=[root / "stability"],
        postprocess=[root / "post"],
        bench=root / "bench.json",
        out=out,
        title=title,
    )
    return {"result": result, "out": out, "images": images, "curve": curve, "title": title}


def markdown(report: dict) -> str:
    return (report["out"] / "report.md").read_text(encoding="utf-8")


def page(report: dict) -> str:
    return (report["out"] / "report.html").read_text(encoding="utf-8")


def table_line(text: str, first_cell: str) -> str:
    """The Markdown table row whose first cell is ``first_cell`` (exactly one)."""
    lines = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(lines) == 1, (first_cell, lines)
    return lines[0]


def test_both_files_are_written(full_report):
    out, result = full_report["out"], full_report["result"]
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.html", "report.md"]
    assert not list(out.parent.glob(".out.*"))  # no temporary folder left behind
    assert (result.out, result.markdown, result.html) == (
        out, out / "report.md", out / "report.html"
    )  # fmt: skip
    assert result.n_figures == 5 and result.title == full_report["title"]
    assert "Generated by unsupseg" in markdown(full_report)


def test_markdown_has_the_metrics_of_every_epoch(full_report):
    text = markdown(full_report)
    for row in EPOCH_ROWS:
        assert row in text
    settings = {
        "preset": "autoencoder-cifar10",
        "architecture": "autoencoder",
        "epochs done": "2 of 4",
        "seed": "7",
        "q (most labels)": "16",
        "image size": "32",
        "device": "cpu",
    }
    for key, value in settings.items():
        assert f"| {key} | {value} |" in text
    assert "2 of 4 epochs done" in text


def test_evaluations_are_two_tables_with_their_numbers(full_report):
    text = markdown(full_report)
    bsds = table_line(text, "kmeans")
    for number in ("0.4123", "0.3568", "0.5235", "0.4877", "0.7123", "2.3457", "0.4568", "0.4988"):
        assert number in bsds
    assert "123.5" in bsds and "0.988" in bsds
    msrc = table_line(text, "tiny-run/model-best + vote")
    assert "| all | 5 | 1 | 0.5555 | 0.3333 | 0.7777 |" in msrc
    order = [text.index(s) for s in ("**BSDS500**", bsds, "**MSRC-v2**", msrc)]
    assert order == sorted(order)


def test_analysis_tables_and_figures_are_rendered(full_report):
    text = markdown(full_report)
    for kind in ("stability", "postprocess"):
        assert f"### {kind} of 3 seeds \\<\\&\\>" in text
        assert f"**{kind} per group**" in text
    assert text.count("| seed\\|a | 12.5 | 3.25 |") == 2
    assert text.count("| b-c | 10 |  |") == 2
    assert "Not shown: missing plot" in text
    assert "No figures in this summary." in text
    stability, post = text.index("## Stability"), text.index("## Post-processing")
    assert text.index("stability per group") in range(stability, post)
    assert text.index("postprocess per group") > post


def test_markdown_images_exist_and_are_the_right_ones(full_report):
    out, images = full_report["out"], full_report["images"]
    references = IMAGE_REFERENCE.findall(markdown(full_report))
    assert len(references) == 5  # 3 run figures, the latest panel, the analysis curve
    for reference in references:
        assert not reference.startswith("/") and (out / reference).is_file(), reference
    copied = {(out / reference).read_bytes() for reference in references}
    expected = {images[n] for n in ("loss_curves", "unique_labels", "merging", "panel_epoch002")}
    assert copied == expected | {full_report["curve"]}
    assert "figures/tiny-run-panel_epoch002.png" in references
    assert images["panel_epoch001"] not in copied


def test_html_is_self_contained(full_report):
    text = page(full_report)
    embedded = DATA_URI.findall(text)
    assert len(embedded) == 5
    copied = {p.read_bytes() for p in (full_report["out"] / "figures").iterdir()}
    assert {base64.b64decode(data) for data in embedded} == copied
    assert text.count('src="') == text.count('src="data:') == 5
    assert "<table>" in text and "<td>kmeans</td>" in text
    assert '<td class="num">0.4123</td>' in text


def test_special_characters_are_escaped(full_report):
    text = page(full_report)
    assert "<script>" not in text
    escaped = "Runs &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; 50% | *bold*"
    assert f"<title>{escaped}</title>" in text and f"<h1>{escaped}</h1>" in text
    assert html.unescape(escaped) == full_report["title"]
    assert "<td>seed|a</td>" in text and "of 3 seeds &lt;&amp;&gt;</h3>" in text
    first = markdown(full_report).splitlines()[0]
    assert first == '# Runs \\<script\\>alert("x")\\</script\\> \\& 50% \\| \\*bold\\*'


def test_parameter_table_lists_every_preset(full_report):
    from unsupseg.models.registry import PRESETS, preset_parameter_table

    text = markdown(full_report)
    appendix = text[text.index("### A. Trainable parameters") : text.index("### B. Training time")]
    table = preset_parameter_table()
    assert len(table) == len(PRESETS) == 14
    for name, count in table.items():
        preset = PRESETS[name]
        assert table_line(appendix, name).startswith(
            f"| {name} | {preset.architecture} | {preset.dataset} | {count:,} |"
        )
    assert table_line(appendix, "classifier-cifar10").endswith("| 92,992 | 84,514 | thesis |")
    assert table_line(appendix, "base-bsds500").endswith("| ours |")


def test_thesis_time_table_with_our_throughput(full_report):
    text = markdown(full_report)
    appendix = text[text.index("### B. Training time") :]
    assert "| preset | epochs | thesis wall time | thesis images/s |" in appendix
    # The thesis: 30 epochs x 50,000 images in 5:39:53 (20,393 s) = 73.6 images/s; ours 123.4/s
    # gives 1.68x and the thesis' schedule in 1,500,000 / 123.4 = 12,156 s = 3:22:36.
    row = table_line(appendix, "base-cifar10")
    assert row == "| base-cifar10 | 30 | 5:39:53 | 73.6 | 123.4 | 1.68× | 3:22:36 |"
    assert "| classifier-voc2012 | 30 | 32:37:21 |" in appendix
    assert table_line(appendix, "base-bsds500").startswith("| base-bsds500 | – | – | – | 7.5 |")
    # The run: 8 images x 2 epochs in 21.04 s.
    run = table_line(appendix, "tiny-run")
    assert run.startswith("| tiny-run | autoencoder-cifar10 | cpu | 2 | 8 | 10.5 |")
    assert "| 0.8 | 186.5 |" in run


def test_format_duration():
    assert format_duration(5 * 3600 + 39 * 60 + 53) == "5:39:53"
    assert format_duration(32 * 3600 + 37 * 60 + 21) == "32:37:21"
    assert format_duration(59.6) == "0:01:00"


def test_evaluations_are_found_in_the_run_folder(tmp_path):
    run = tmp_path / "run"
    make_run(run, figures=False)
    (run / "evaluation-kmeans.json").write_text(json.dumps(BSDS_SUMMARY))
    (run / "eval").mkdir()
    (run / "eval" / "ckpt.json").write_text(json.dumps(MSRC_SUMMARY))
    (run / "eval" / "evaluate.json").write_text(json.dumps(MSRC_SUMMARY["settings"]))
    # Given explicitly as well: listed once.
    result = build_report([run], evaluations=[run / "evaluation-kmeans.json"])
    assert result.out == run / "report"
    text = result.markdown.read_text()
    assert "0.4123" in table_line(text, "kmeans")
    assert "0.5555" in table_line(text, "tiny-run/model-best + vote")
    assert "Skipped" in text and "evaluate.json: not an evaluation summary" in text


def test_a_run_in_progress_gives_notes_not_errors(tmp_path):
    run = tmp_path / "fresh"
    make_run(run, metrics=False, figures=False)
    result = build_report([run])
    assert result.n_figures == 0
    text = (run / "report" / "report.md").read_text()
    assert "No metrics.csv yet" in text
    assert "Not shown: Loss per epoch" in text and "No sample panel" in text
    assert "No evaluation summaries" in text and "No stability analysis given" in text
    assert "| fresh | autoencoder-cifar10 | cpu | 0 |" in text
    assert not (run / "report" / "figures").exists()
    assert "data:image" not in (run / "report" / "report.html").read_text()


def test_several_runs_with_one_name_get_distinct_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = make_run(tmp_path / "a" / "run")
    second = make_run(tmp_path / "b" / "run")
    (tmp_path / "b" / "run" / "figures" / "merging.png").write_bytes(first["loss_curves"])
    result = build_report(["a/run", "b/run"])
    out = tmp_path / "runs" / "report"  # several runs: runs/report in the current folder
    assert result.out.resolve() == out
    text = (out / "report.md").read_text()
    assert "## Run run" in text and "## Run run-2" in text
    assert (out / "figures" / "run-merging.png").read_bytes() == first["merging"]
    assert (out / "figures" / "run-2-merging.png").read_bytes() == first["loss_curves"]
    assert (out / "figures" / "run-2-panel_epoch002.png").read_bytes() == second["panel_epoch002"]
    assert len(IMAGE_REFERENCE.findall(text)) == 8 == result.n_figures


def test_a_new_report_replaces_the_old_one_as_a_whole(tmp_path, monkeypatch):
    run = tmp_path / "run"
    make_run(run)
    build_report([run])
    out = run / "report"
    (out / "stale.txt").write_text("old")
    before = (out / "report.md").read_text()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("unsupseg.report.render.render_html", fail)
    with pytest.raises(RuntimeError):
        build_report([run], title="second")
    assert (out / "report.md").read_text() == before  # the earlier report is untouched
    assert not list(run.glob(".report.*"))
    monkeypatch.undo()
    build_report([run], title="second")
    assert not (out / "stale.txt").exists()
    assert (out / "report.md").read_text().startswith("# second\n")


def _corrupt_metrics(run: Path) -> None:
    (run / "metrics.csv").write_text(METRICS_CSV.replace("2.34567", "abc"))


def _no_column(run: Path) -> None:
    (run / "metrics.csv").write_text(METRICS_CSV.replace(",seconds", ""))


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("missing", RunFolderError, "no such run folder"),
        ("no-config", RunFolderError, "no config.json"),
        ("corrupt-config", RunFolderError, "not valid JSON"),
        ("corrupt-metrics", RunFolderError, "line 3"),
        ("metrics-column", RunFolderError, "no column seconds"),
        ("corrupt-evaluation", RunFolderError, "not valid JSON"),
        ("not-evaluation", RunFolderError, "not an evaluation summary"),
        ("no-summary", RunFolderError, "without summary.json"),
        ("bad-table", RunFolderError, "table 1 needs"),
        ("bad-bench", RunFolderError, "not a training benchmark"),
        ("out-is-run", ConfigError, "would replace the input"),
        ("out-not-report", ConfigError, "holds no earlier report"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, case, error, message):
    run = tmp_path / "run"
    make_run(run, figures=False)
    runs, options = [run], {}
    if case == "missing":
        runs = [tmp_path / "nowhere"]
    elif case == "no-config":
        (run / "config.json").unlink()
    elif case == "corrupt-config":
        (run / "config.json").write_text('{"settings": ')
    elif case == "corrupt-metrics":
        _corrupt_metrics(run)
    elif case == "metrics-column":
        _no_column(run)
    elif case in ("corrupt-evaluation", "not-evaluation"):
        path = tmp_path / "eval.json"
        path.write_text("{oops" if case == "corrupt-evaluation" else '{"miou_all": 1}')
        options["evaluations"] = [path]
    elif case == "no-summary":
        (tmp_path / "stab").mkdir()
        options["stability"] = [tmp_path / "stab"]
    elif case == "bad-table":
        make_analysis(tmp_path / "post", "postprocess")
        summary = json.loads((tmp_path / "post" / "summary.json").read_text())
        summary["tables"][0]["rows"] = "not rows"
        (tmp_path / "post" / "summary.json").write_text(json.dumps(summary))
        options["postprocess"] = [tmp_path / "post"]
    elif case == "bad-bench":
        (tmp_path / "bench.json").write_text(json.dumps({"benchmark": "refine", "rows": []}))
        options["bench"] = tmp_path / "bench.json"
    elif case == "out-is-run":
        options["out"] = run
    elif case == "out-not-report":
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "notes.txt").write_text("keep me")
        options["out"] = tmp_path / "busy"
    with pytest.raises(error) as raised:
        build_report(runs, **options)
    text = str(raised.value)
    assert len(text.splitlines()) == 1 and message in text, text
    assert not (run / "report").exists()
    if case == "out-is-run":
        assert (run / "config.json").is_file() and (run / "metrics.csv").is_file()
    if case == "out-not-report":
        assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_no_runs_is_an_error():
    with pytest.raises(ConfigError, match="no run folders"):
        build_report([])


# --------------------------------------------------------------------------------------
# The renderers


def test_markdown_rendering_escapes_and_aligns():
    blocks = [
        Heading("snake_case _em_ *c*", 1),
        Paragraph("- not a list, 1. nor this"),
        Code("echo ```x```"),
        Table(["name", "value"], [["a|b", "1,234.5"], ["c"]], title="T <1>"),
    ]
    text = render_markdown(blocks, {})
    assert text.splitlines()[0] == "# snake_case \\_em\\_ \\*c\\*"  # in-word _ is kept
    assert "\\- not a list, 1. nor this" in text
    assert "````console\necho ```x```\n````" in text  # a longer fence than the text's
    assert "**T \\<1\\>**" in text
    assert "|---|---:|" in text  # the value column is numeric
    assert "| a\\|b | 1,234.5 |" in text and "| c |  |" in text  # short rows padded


def test_html_rendering_escapes_every_text():
    data = b"\x89PNG\r\n\x1a\n fake"
    blocks = [
        Heading("<h>", 9),
        Paragraph("a & b"),
        Code("x < y"),
        Table(["k", "n"], [["<i>", "3"]], title="t'"),
        Figure(data=data, caption='"cap"', name="f.png"),
    ]
    page = render_html(blocks, "T & U")
    assert "<title>T &amp; U</title>" in page
    assert "<h6>&lt;h&gt;</h6>" in page  # levels beyond 6 are clamped
    assert "<p>a &amp; b</p>" in page and "<pre><code>x &lt; y</code></pre>" in page
    assert "<caption>t&#39;</caption>" in page
    assert '<th>k</th><th class="num">n</th>' in page
    assert '<td>&lt;i&gt;</td><td class="num">3</td>' in page
    encoded = base64.b64encode(data).decode()
    assert f'<img src="data:image/png;base64,{encoded}" alt="&#34;cap&#34;">' in page
    assert "<figcaption>&#34;cap&#34;</figcaption>" in page
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")


# --------------------------------------------------------------------------------------
# The command


def test_cli_writes_both_files_and_prints_their_paths(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run, figures=False)
    (tmp_path / "bench.json").write_text(json.dumps(BENCH))
    argv = ["report", str(run), "--title", "T", "--bench", str(tmp_path / "bench.json")]
    assert main(argv) == 0
    out = run / "report"
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "report.md"), str(out / "report.html")]
    text = (out / "report.md").read_text()
    assert text.startswith("# T\n")
    # the command line that made the report, under the title
    command = f"unsupseg report {run} --title T --bench {tmp_path / 'bench.json'}"
    assert f"```console\n{command}\n```" in text
    assert "| base-cifar10 | 30 | 5:39:53 | 73.6 | 123.4 |" in text


def test_cli_bad_input_is_exit_status_2_and_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run, figures=False)
    (tmp_path / "eval.json").write_text("{oops")
    assert main(["report", str(run), "--evaluation", str(tmp_path / "eval.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not valid JSON" in err, err
    assert main(["report", str(run), "--out", str(run)]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert not (run / "report").exists()
