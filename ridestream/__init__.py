"""ridestream: streaming taxi-trip duration prediction, drift monitoring and retraining on Kafka.

This package is shared by the four services (producer, predictor, monitor, retrainer) and
imports nothing from them.
"""

__version__ = "0.1.0"
