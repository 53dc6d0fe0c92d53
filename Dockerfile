# teleconsult: signalling + in-process relay. See docker-compose.yml.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopus0 libvpx7 libsrtp2-1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY signalling signalling
COPY media media
COPY rooms rooms
COPY store store
COPY bench bench
COPY waiting_room waiting_room
COPY turn turn
COPY web_client web_client
RUN pip install --no-cache-dir -e . && useradd --system teleconsult
USER teleconsult
EXPOSE 8080
CMD ["teleconsult", "serve", "--host", "0.0.0.0"]
