# One image for every service of docker-compose.yml: the Dask scheduler, the workers and the ingest
# run the same shardmerge, as they must (workers unpickle shardmerge's task functions).
FROM python:3.11-slim

WORKDIR /opt/shardmerge
COPY pyproject.toml setup.py README.md ./
COPY shardmerge ./shardmerge
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 1000 astro \
    && mkdir -p /data/inputs /data/output /scratch \
    && chown astro /data/output /scratch
USER astro
