"""collabops' own ZenML stack component flavors (registered by `python run.py stacks`)."""
