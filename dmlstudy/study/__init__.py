"""What the study runs: each run's settings and the key that set each value, the checks before
compute (check_params), ablation arms, multi-modal runs, the tuning campaign, the budget check,
the paper-grade study's units."""
