"""Replays NYC TLC trip records into Kafka as ride events, in event-time order."""
