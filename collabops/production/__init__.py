"""The production stage: the acceptance gate, deployment checks, batch scoring, the prediction service."""
