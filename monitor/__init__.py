"""Joins predictions with completed rides and reports drift and quality per event-time window."""
