"""Convergence read from the runs: curves, the selected epoch, the lr drop, the converged flag."""

from __future__ import annotations

from dmlstudy.analysis import convergence as C


def test_marks_and_curves_follow_the_plateau_history(tmp_path, make_run):
    make_run(tmp_path, "a", 0, 1.0)
    make_run(tmp_path, "b", 0, 1.0, converged=False)
    curves, marks = C.load_convergence(tmp_path, ["a", "b"], [0])
    a = marks.set_index("loss").loc["a"]
    # history: improve, improve, wait, drop (epoch index 3), improve (4), wait, stop
    assert (a["best_epoch"], a["lr_drops"], a["epochs_run"], a["converged"]) == (5, [4], 7, True)
    assert curves[curves["loss"] == "a"]["epoch"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    best = curves[(curves["loss"] == "a") & (curves["epoch"] == a["best_epoch"])]
    assert best["val_map@r"].item() == max(curves[curves["loss"] == "a"]["val_map@r"])
    table = C.convergence_table(marks)
    assert table.loc[("a", 0), "lr dropped after epoch"] == "4"
    assert table.loc[("b", 0), "converged"].startswith("not converged")
    assert C.unconverged(marks) == ["b"]
    assert C.convergence_sentence(marks).startswith("1 of 2 runs did not converge")


def test_every_run_converged_sentence_and_seeds_named(tmp_path, make_run):
    for seed in (0, 1):
        make_run(tmp_path, "a", seed, 1.0, converged=seed == 0)
    _, marks = C.load_convergence(tmp_path, ["a"], [0, 1])
    assert C.unconverged(marks) == ["a seed 1"]
    ok = marks[marks["converged"]]
    assert C.convergence_sentence(ok).startswith("All 1 runs converged")
