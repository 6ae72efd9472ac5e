-- Where a quote's picture lives in Discord (its URLs expire: the message is read again for a
-- fresh one), and each server's blocked words (stored normalised).
ALTER TABLE quotes ADD COLUMN picture_channel_id BIGINT;
ALTER TABLE quotes ADD COLUMN picture_message_id BIGINT;
ALTER TABLE quotes ADD COLUMN picture_key TEXT;
CREATE TABLE blocked_words (
    guild_id  BIGINT NOT NULL,
    word      TEXT NOT NULL,
    PRIMARY KEY (guild_id, word)
);
