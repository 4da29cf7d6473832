-- Schemas are global (one id per distinct schema, shared by every subject that registers it);
-- a subject is an ordered list of versions pointing at schema ids.
CREATE TABLE schemas (
    id         SERIAL PRIMARY KEY,
    normalized TEXT NOT NULL UNIQUE, -- the schema JSON with sorted keys and no whitespace
    schema     TEXT NOT NULL         -- as first registered
);

CREATE TABLE subject_versions (
    subject   TEXT NOT NULL,
    version   INT NOT NULL,
    schema_id INT NOT NULL REFERENCES schemas (id),
    deleted   BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (subject, version)
);

-- Compatibility level per subject; the row with subject '' is the global default.
CREATE TABLE compatibility (
    subject TEXT PRIMARY KEY,
    level   TEXT NOT NULL
);
