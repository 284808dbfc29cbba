-- Version 2: the writer touches fewer B-trees per event.  The timestamp
-- indexes served only retention, which now walks rowid / seq order (rows
-- are appended in time order) and stops at the first row that is too new.
DROP INDEX IF EXISTS events_received;
DROP INDEX IF EXISTS outcomes_recorded;
