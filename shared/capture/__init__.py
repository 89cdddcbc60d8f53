"""The capture store: the only writer of personal records, with the subject index and capture counts."""
