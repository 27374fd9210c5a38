-- Chat messages and identities that belong to a request: the approval card (channel, message
-- ts) that later events update in place, and the requester's chat user id for DMs.
CREATE TABLE chat_refs (
    platform   TEXT NOT NULL,
    request_id INTEGER NOT NULL REFERENCES requests (id),
    name       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    message    TEXT NOT NULL,
    PRIMARY KEY (platform, request_id, name)
);
