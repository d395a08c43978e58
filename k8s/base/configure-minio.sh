#!/bin/sh
# Configures the object store for the ingestion pipeline, idempotently:
#   * the upload bucket exists;
#   * its object-created notifications go to process-file: by default as MinIO webhooks
#     straight to PROCESS_FILE_URL with the WEBHOOK_TOKEN bearer token; with
#     NOTIFY_TARGET=kafka to a Kafka topic read by the broker component's KafkaSource;
#   * the notification target has a persistent queue (queue_dir): an event that cannot be
#     delivered is kept on disk and re-sent every 3 s until process-file answers 2xx;
#   * browsers may upload with presigned URLs from CORS_ORIGINS.
# Run by the Job minio-notify on every deploy; by hand for OpenFaaS (docs/deploy.md).
set -eu

: "${S3_ENDPOINT:?}" "${S3_BUCKET:?}" "${MINIO_ADMIN_USER:?}" "${MINIO_ADMIN_PASSWORD:?}"
: "${ALLOWED_EXTENSIONS:?}" "${CORS_ORIGINS:?}" "${NOTIFY_QUEUE_DIR:?}"
id="${NOTIFY_ID:-ingest}"
queue_limit="${NOTIFY_QUEUE_LIMIT:-100000}"
store=ingest-store
restart_needed=no

config_set() {
    output=$(mc admin config set "$store" "$@")
    echo "$output"
    case "$output" in
        *[Rr]estart*) restart_needed=yes ;;
    esac
}

mc alias set "$store" "$S3_ENDPOINT" "$MINIO_ADMIN_USER" "$MINIO_ADMIN_PASSWORD" >/dev/null
mc mb --ignore-existing "$store/$S3_BUCKET"

case "${NOTIFY_TARGET:-webhook}" in
    webhook)
        : "${PROCESS_FILE_URL:?}" "${WEBHOOK_TOKEN:?}"
        config_set "notify_webhook:$id" endpoint="$PROCESS_FILE_URL" \
            auth_token="$WEBHOOK_TOKEN" queue_dir="$NOTIFY_QUEUE_DIR" queue_limit="$queue_limit"
        arn="arn:minio:sqs::$id:webhook"
        other_arn="arn:minio:sqs::$id:kafka"
        ;;
    kafka)
        : "${KAFKA_BROKERS:?}" "${KAFKA_TOPIC:?}"
        config_set "notify_kafka:$id" brokers="$KAFKA_BROKERS" topic="$KAFKA_TOPIC" \
            queue_dir="$NOTIFY_QUEUE_DIR" queue_limit="$queue_limit"
        arn="arn:minio:sqs::$id:kafka"
        other_arn="arn:minio:sqs::$id:webhook"
        ;;
    *)
        echo "NOTIFY_TARGET must be webhook or kafka, not '$NOTIFY_TARGET'" >&2
        exit 2
        ;;
esac

# Presigned browser uploads need CORS on the S3 API (MinIO: the api subsystem).
config_set api cors_allow_origin="$CORS_ORIGINS"

# The admin page (presign's GET …/ui/) uploads from presign's own origin, which CORS_ORIGINS
# must list. Multipart uploads read each part's ETag: MinIO's S3 API exposes it to every
# allowed origin; a store that takes bucket CORS rules gets them here too (ETag exposed).
cors_rules=$(mktemp)
{
    echo "<CORSConfiguration><CORSRule>"
    for origin in $(echo "$CORS_ORIGINS" | tr ',' ' '); do
        echo "<AllowedOrigin>$origin</AllowedOrigin>"
    done
    for method in GET HEAD PUT POST; do echo "<AllowedMethod>$method</AllowedMethod>"; done
    echo "<AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>"
    echo "<MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>"
} > "$cors_rules"
if ! mc cors set "$store/$S3_BUCKET" "$cors_rules" >/dev/null 2>&1; then
    echo "bucket CORS rules not taken here; the api cors_allow_origin setting applies"
fi
rm -f "$cors_rules"

if [ "$restart_needed" = yes ]; then
    mc admin service restart "$store"
fi

# Switching event paths must not deliver twice: drop the other target's rules.
mc event remove "$store/$S3_BUCKET" "$other_arn" >/dev/null 2>&1 || true

# `put` also fires on copies and tagging; process-file filters on the event name. Suffix
# filters are case-sensitive, so each allowed extension is registered in both cases.
for ext in $(echo "$ALLOWED_EXTENSIONS" | tr ',' ' '); do
    lower=$(echo "$ext" | tr '[:upper:]' '[:lower:]')
    upper=$(echo "$ext" | tr '[:lower:]' '[:upper:]')
    for suffix in "$lower" "$upper"; do
        mc event add "$store/$S3_BUCKET" "$arn" --event put --prefix uploads/ \
            --suffix "$suffix" --ignore-existing
    done
done

mc event list "$store/$S3_BUCKET" "$arn"
