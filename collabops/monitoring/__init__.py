"""Monitoring: the production model's current data and live error against the reference its bundle brought.

One concept a module: :mod:`.current` (the period's rows: the inference log or
a file, outcomes joined), :mod:`.reference` (what the model bundle brought),
:mod:`.season` (the reference's rows of the same season), :mod:`.sampling`
(the seeded stratified sample and its error bound), :mod:`.drift` (Evidently's
per-column distances and report), :mod:`.quality` (the period's data against
the contract and the reference), :mod:`.live_error` (the error where outcomes
arrived, against the promise), :mod:`.verdict` (``ok``/``warning``/``drift``
and why) and :mod:`.request` (the retraining request a drift sends back).
No ZenML imports.
"""
