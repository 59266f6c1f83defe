"""`ridestream backtest`: retraining policies replayed side by side on the same labelled rides.

This is the one package that imports several services. A backtest must run the code the
services run, not a re-implementation of it: the monitor's join, windows, drift and alert
rules (`monitor.pipeline`), the retrainer's buffer, split and promotion rule (`retrainer`),
and the predictor's batch prediction (`predictor.predict`). The shared package `ridestream`
imports nothing from the services, so the composition lives here, beside them; the
services still import nothing from each other, and nothing imports `backtest`.
"""
