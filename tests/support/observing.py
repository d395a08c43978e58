"""What every function serves beside its own routes."""

from flask.testing import FlaskClient

METRIC_FAMILIES = (
    "csv_files_uploaded_total",
    "csv_files_processed_total",
    "csv_files_failed_total",
    "csv_processing_duration_seconds_bucket",
    "csv_queue_length",
    "csv_rows_loaded_total",
    "csv_rows_rejected_total",
)


def assert_serves_health_and_metrics(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    for family in METRIC_FAMILIES:
        assert family in metrics.text
