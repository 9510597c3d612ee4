"""Compatibility of Headrace with Apache Kafka's own Java tools and broker (tests/peers/kafka.py).
"""
