DROP TABLE IF EXISTS audit_horizons;
