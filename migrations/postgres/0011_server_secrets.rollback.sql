DROP TABLE IF EXISTS server_secrets;
