# teleconsult: signalling + in-process relay. See docker-compose.yml.
# PYTHON_IMAGE: any Debian bookworm image with Python 3.11 as `python` and `pip` on
# PATH; without Docker Hub, deploy/local-images.sh builds one from Debian packages.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
# The media libraries, unless the base image has them (the local one does: its
# builds run without network).
RUN dpkg-query -W libopus0 libvpx7 libsrtp2-1 >/dev/null 2>&1 \
 || (apt-get update \
     && apt-get install -y --no-install-recommends libopus0 libvpx7 libsrtp2-1 \
     && rm -rf /var/lib/apt/lists/*)
WORKDIR /app
# What .dockerignore lets through: pyproject.toml, README.md and the packages.
COPY . .
RUN pip install --no-cache-dir -e . && useradd --system teleconsult
USER teleconsult
EXPOSE 8080
CMD ["teleconsult", "serve", "--host", "0.0.0.0"]
