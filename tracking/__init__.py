"""MLflow run tracking: the store, the run lifecycle, the metrics reporter, single runs, the UI,
and trained models back out of MLflow. It builds on ``gpt`` and never imports optuna."""
