"""Retrains on drift alerts and promotes a challenger only when it is better."""
