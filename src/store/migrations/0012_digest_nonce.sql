-- A random part of each digest's Message-IDs, so that a rebuilt database or
-- a second installation for the same domain never reissues the Message-ID
-- of another message (Gmail and others drop a message whose Message-ID they
-- have seen). Digests issued before this migration have none and keep the
-- Message-IDs they were sent with.
ALTER TABLE digests ADD COLUMN nonce TEXT;
