"""Batch inference: which model scores a day, the predictions store, the scoring stage."""
