-- Prefect's database beside the app's (the image's entrypoint creates `release_requests`).
CREATE DATABASE release_requests_prefect;
