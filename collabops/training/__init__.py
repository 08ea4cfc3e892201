"""The training stage: features inside the model, baseline, task, search, evaluation, promotion, tracking."""
