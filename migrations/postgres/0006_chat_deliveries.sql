-- Chat deliveries already acted on (Slack trigger_id / event_id, Discord interaction id), so a
-- platform's retry or a replayed signed payload acts once. Rows are kept past the signature
-- window and then deleted.
CREATE TABLE chat_deliveries (
    platform    TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    keep_until  BIGINT NOT NULL,
    PRIMARY KEY (platform, delivery_id)
);
CREATE INDEX chat_deliveries_keep_until ON chat_deliveries (keep_until);
