-- Who acted, by kind: a rep, an API token bound to no rep, the bridge itself (routing),
-- or the contact. Before this, a token's name was recorded as if a rep had that name;
-- those rows cannot be told apart now and stay `rep`, except routing's.
ALTER TABLE audit ADD COLUMN actor_type TEXT NOT NULL DEFAULT 'rep';
UPDATE audit SET actor_type = 'system' WHERE actor = 'routing';
ALTER TABLE contact_audit ADD COLUMN actor_type TEXT NOT NULL DEFAULT 'rep';
