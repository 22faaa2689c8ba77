"""The ablation of sda.ablation: its rows, its sweep file, its commands, and a tiny run end to end."""

import csv
import shlex
import shutil
import subprocess
import sys

import pytest

from sda.ablation import SCALES, ablation_toml, rows_for, trial_commands
from sda.cli import build_parser, config_from_args
from sda.run import validate_config
from sda.sweep_config import SweepConfigError, parse_sweep

pytest.importorskip("ray")


@pytest.mark.parametrize("scale", sorted(SCALES))
def test_every_scale_has_the_same_rows_and_valid_trials(scale):
    sweep = parse_sweep(ablation_toml(scale))
    names = [row.name for row in rows_for(SCALES[scale])]
    assert [c["variant"] for c in sweep.configurations] == names
    assert len(names) == 16 and len(sweep.seeds) == SCALES[scale].seeds
    configs = {c["variant"]: validate_config(sweep.trial_config(c, 1)) for c in sweep.configurations}
    # the three criteria the question is about, from UFLDL's anchor
    assert configs["ufldl"]["criteria"] == "sparse" and configs["ufldl"]["optimizer"] == "lbfgs"
    assert configs["ufldl_criterion_plain"]["criteria"] == "denoising"
    assert set(configs["ufldl_criterion_plain"]["corruption_levels"]) == {0.0}
    assert min(configs["ufldl_criterion_denoising"]["corruption_levels"]) > 0


def test_each_row_changes_one_factor_of_its_anchor():
    rows = rows_for(SCALES["full"])
    anchors = {row.anchor: row.overrides for row in rows if row.factor == "anchor"}
    shape_keys = {"hidden_layer_sizes", "corruption_levels"}
    for row in rows:
        changed = {k for k, v in row.overrides.items() if anchors[row.anchor].get(k) != v}
        if row.factor == "anchor":
            assert not changed
        elif row.factor in ("depth", "width"):
            assert changed <= shape_keys and "hidden_layer_sizes" in changed
        elif row.factor == "pretraining data":
            assert changed == {"pretrain_size"}
        elif row.factor == "fine-tuning":
            assert changed == {"finetune_layers"}
        elif row.factor == "criterion":
            assert changed <= {"criteria"} | shape_keys and changed
        else:
            assert row.factor == "optimiser" and "optimizer" in changed


def test_the_commands_train_the_sweeps_configurations(tmp_path):
    sweep = parse_sweep(ablation_toml("quick"))
    commands = trial_commands("quick", tmp_path)
    assert len(commands) == sweep.n_trials
    for command, configuration in zip(commands, sweep.configurations):
        args = build_parser().parse_args(command.split()[3:])
        assert validate_config(config_from_args(args)) == validate_config(sweep.trial_config(configuration, 1))
        assert args.train_size == 5000 and args.output_dir.name == f"{configuration['variant']}_s1"


def test_the_commands_are_those_still_to_run_and_odd_folders_are_refused(tmp_path, capsys):
    """--commands prints what is left: nothing for a finished trial, --resume for an interrupted
    one; a folder it must not continue or count (another scale's run, unreadable results, a run
    stopped before its first checkpoint) is refused in one line, and --collect marks it failed."""
    from sda.ablation import main
    from sda.cli import main as sda_main
    rows = ["ufldl", "tutorial_depth_2"]
    first = trial_commands("tiny", tmp_path, rows)
    assert [c.rsplit("/", 1)[-1] for c in first] == ["ufldl_s1", "tutorial_depth_2_s1"]
    assert sda_main(shlex.split(first[0])[3:]) == 0  # ufldl_s1 finished
    capsys.readouterr()
    assert trial_commands("tiny", tmp_path, rows) == first[1:]
    interrupted = tmp_path / "copy" / "ufldl_s1"  # a finished run without its results: its checkpoint remains
    shutil.copytree(tmp_path / "ufldl_s1", interrupted)
    (interrupted / "results.json").unlink()
    assert trial_commands("tiny", interrupted.parent, ["ufldl"]) == [
        f"python -m sda.SdA --resume {interrupted} --quiet --no-pictures"]
    assert main(["--tiny", "--collect", "--output-dir", str(interrupted.parent)]) == 0
    with open(interrupted.parent / "ablation.csv", newline="") as f:
        row = {row["row"]: row for row in csv.DictReader(f)}["ufldl"]
    assert row["status"] == "unfinished" and f"--resume {interrupted}" in row["message"]
    capsys.readouterr()
    assert main(["--commands", "--tiny", "--rows", "ufldl", "--rows", "tutorial_depth_2", "--output-dir",
                 str(tmp_path)]) == 0  # --rows given twice: both
    assert capsys.readouterr().out.splitlines() == first[1:]

    def refused(argv, *words):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and all(word in err for word in words), err

    refused(["--commands", "--rows", "ufldl", "--output-dir", str(tmp_path)], "ufldl_s1", "another scale")  # full
    (tmp_path / "tutorial_depth_2_s1").mkdir()
    (tmp_path / "tutorial_depth_2_s1" / "metrics.jsonl").write_text("")
    refused(["--commands", "--tiny", "--output-dir", str(tmp_path)], "stopped before its first checkpoint")
    (tmp_path / "tutorial_depth_2_s1" / "results.json").write_text("garbage{")
    refused(["--commands", "--tiny", "--output-dir", str(tmp_path)], "unreadable")
    refused(["--commands", "--rows", "ufldl_typo", "--output-dir", str(tmp_path)], "'ufldl_typo'")
    refused(["--rows", "ufldl", "--output-dir", str(tmp_path)], "--rows goes with --commands")
    refused(["--commands", "--resume", "--output-dir", str(tmp_path)], "--resume", "Ray")
    refused(["--commands", "--output-dir", str(tmp_path / "ufldl_s1" / "results.json")], "not a folder")
    assert main(["--tiny", "--collect", "--output-dir", str(tmp_path)]) == 0
    with open(tmp_path / "ablation.csv", newline="") as f:
        table = {row["row"]: row for row in csv.DictReader(f)}
    assert table["ufldl"]["status"] == "finished"
    assert table["tutorial_depth_2"]["status"] == "failed" and "unreadable" in table["tutorial_depth_2"]["message"]
    assert main(["--collect", "--output-dir", str(tmp_path)]) == 0  # the full scale: the tiny run is not counted
    with open(tmp_path / "ablation.csv", newline="") as f:
        full = {(row["row"], row["seed"]): row["status"] for row in csv.DictReader(f)}
    assert full["ufldl", "1"] == "failed" and full["ufldl", "2"] == "unfinished"
    capsys.readouterr()
    assert main(["--commands", "--tiny", "--rows", "ufldl", "--output-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "rows asked for" in captured.err and "--collect" in captured.err
    assert "--tiny" in captured.err


def test_the_figure_says_when_a_row_has_fewer_seeds():
    from sda.ablation import bar_label
    assert bar_label(1.77, 3, 3) == "1.77 %"
    assert bar_label(1.954, 1, 3) == "1.95 % (1 seed of 3)" and bar_label(2.0, 2, 3) == "2.00 % (2 seeds of 3)"


def test_variants_need_distinct_names_and_known_keys():
    with pytest.raises(SweepConfigError, match="name of its own"):
        parse_sweep('[[variants]]\nname = "a"\n[[variants]]\nname = "a"\n')
    with pytest.raises(SweepConfigError, match="unknown keys"):
        parse_sweep('[[variants]]\nname = "a"\nlearning_rate = 0.1\n')


def test_a_tiny_ablation_runs_end_to_end(tmp_path):
    # in a process of its own, as a user runs it: Ray forks, which a process that has imported JAX must not
    run = subprocess.run([sys.executable, "-m", "sda.ablation", "--tiny", "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    with open(tmp_path / "ablation.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [row["row"] for row in table] == [row.name for row in rows_for(SCALES["tiny"])]
    assert all(row["status"] == "finished" and 0 <= float(row["test_error"]) <= 1 for row in table)
    assert (tmp_path / "ablation.png").stat().st_size > 10_000
    printed = run.stdout
    assert "criterion → sparse autoencoder" in printed and "ablation.csv" in printed


def test_a_variant_may_not_set_the_seed_nor_a_layer_shape_config_also_sets():
    with pytest.raises(SweepConfigError, match="sets seed"):
        parse_sweep('[[variants]]\nname = "a"\nseed = 7\n')
    with pytest.raises(SweepConfigError, match="give the layer shape in one place"):
        parse_sweep('[config]\ndepth = 3\n[[variants]]\nname = "a"\nhidden_layer_sizes = [8, 16]\n'
                    'corruption_levels = [0.1, 0.2]\n')


def test_collect_refuses_a_folder_without_runs_and_marks_damaged_runs_failed(tmp_path, capsys):
    from sda.ablation import main
    assert main(["--tiny", "--collect", "--output-dir", str(tmp_path / "typo")]) == 2
    assert "no run folders" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    damaged = tmp_path / "runs" / "tutorial_s1"
    damaged.mkdir(parents=True)
    (damaged / "metrics.jsonl").write_text("garbage{\n")
    interrupted = tmp_path / "runs" / "ufldl_s1"
    interrupted.mkdir()
    (interrupted / "checkpoint.safetensors").write_bytes(b"")
    assert main(["--tiny", "--collect", "--output-dir", str(tmp_path / "runs")]) == 0
    with open(tmp_path / "runs" / "ablation.csv", newline="") as f:
        rows = {row["row"]: row for row in csv.DictReader(f)}
    assert rows["tutorial"]["status"] == "failed" and "unreadable" in rows["tutorial"]["message"]
    # an unreadable checkpoint is not counted (an interrupted trial's message: the test above)
    assert rows["ufldl"]["status"] == "failed" and str(interrupted) in rows["ufldl"]["message"]
    assert rows["tutorial_depth_2"]["status"] == "unfinished" and "--commands" in rows["tutorial_depth_2"]["message"]


def test_deeply_nested_run_files_are_refused_in_one_line(tmp_path, capsys):
    """json recurses once per level: files nested 100,000 deep are refused before parsing."""
    from sda.ablation import main
    deep = "[" * 100_000 + "]" * 100_000
    stopped = tmp_path / "tutorial_s1"
    stopped.mkdir()
    (stopped / "metrics.jsonl").write_text(deep + "\n")
    finished = tmp_path / "ufldl_s1"
    finished.mkdir()
    (finished / "results.json").write_text(deep)
    assert main(["--tiny", "--collect", "--output-dir", str(tmp_path)]) == 0
    with open(tmp_path / "ablation.csv", newline="") as f:
        rows = {row["row"]: row for row in csv.DictReader(f)}
    assert rows["tutorial"]["status"] == "failed" and rows["ufldl"]["status"] == "failed"
    assert "nested" in rows["ufldl"]["message"] or "unreadable" in rows["ufldl"]["message"]
    capsys.readouterr()
    assert main(["--commands", "--tiny", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("metrics, message", [
    ('{"phase": "fine-tuning", "epoch": 1, "validation_error": NaN, "test_error": null, "seconds": 1}',
     "errors must be numbers in [0, 1]"),
    ('{"phase": "fine-tuning", "epoch": 1, "validation_error": 1e999, "test_error": null, "seconds": 1}',
     "errors must be numbers in [0, 1]"),
    ('{"phase": "fine-tuning", "epoch": 1, "validation_error": 0.5, "validation_error": 0.01}', "twice"),
    ('{"phase": "fine-tuning", "epoch": 1, "validation_error": 0.1, "test_error": 0.1, "seconds": 1}\n{"phase": "fi',
     "line 2: not valid JSON"),
])
def test_collect_says_why_forged_metrics_fail(metrics, message, tmp_path):
    from sda.ablation import main
    (tmp_path / "tutorial_s1").mkdir()
    (tmp_path / "tutorial_s1" / "metrics.jsonl").write_text(metrics + "\n")
    (tmp_path / "ufldl_s1").mkdir()
    (tmp_path / "ufldl_s1" / "results.json").write_text("[1, 2]")
    assert main(["--tiny", "--collect", "--output-dir", str(tmp_path)]) == 0
    with open(tmp_path / "ablation.csv", newline="") as f:
        rows = {row["row"]: row for row in csv.DictReader(f)}
    assert rows["tutorial"]["status"] == "failed" and message in rows["tutorial"]["message"], rows["tutorial"]
    assert rows["ufldl"]["status"] == "failed" and "not the results a run writes" in rows["ufldl"]["message"]
