"""podtier: a Kubernetes admission webhook that sizes and places Apache Airflow worker pods."""

__version__ = "0.1.0"
