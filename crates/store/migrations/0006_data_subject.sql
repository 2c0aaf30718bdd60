-- Guest orders name the data key their personal data is under (a key taken
-- from a reservoir created ahead of time, so checkout never waits for the
-- key store). NULL for orders of accounts (the account's key) and for guest
-- orders placed before this (`order:<id>`).
ALTER TABLE orders ADD COLUMN data_subject TEXT;
