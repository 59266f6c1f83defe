"""Predicts ride durations from rides.requested to rides.predictions, hot-swapping models."""
