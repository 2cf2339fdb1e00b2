-- Incoming authentication (`verify = true`): what DKIM, SPF, DMARC and ARC
-- found when the post arrived, as the value of the Authentication-Results
-- field (RFC 8601) that was added on top of its raw message; NULL when its
-- list does not verify.
ALTER TABLE posts ADD COLUMN auth_results TEXT;
