# The image of every Python service in docker-compose.yml: topic provisioning, model build, pipeline,
# Streamlit app and producer. Each service picks its entry point with its command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them. The extra index offers the
# CPU-only torch wheel (same version, "+cpu"), which pip prefers: no gigabytes of CUDA libraries.
COPY requirements.txt .
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

# An unprivileged user; /models (the model volume), /state (Quix window state) and the data set
# cache are the only places the services write to.
RUN useradd --create-home --uid 10001 sentistream \
    && mkdir -p /models /state /app/.cache/datasets \
    && chown sentistream:sentistream /models /state /app/.cache /app/.cache/datasets

COPY --chown=root:root . .
USER sentistream

# The model build's VADER data comes from PyPI (a source distribution): fetch it now, while building
# the image, so that the one-shot model-build service needs no network.
RUN python -c "from sentiment_model.datasets import fetch_vader_sdist; fetch_vader_sdist()"

ENV SENTISTREAM_MODEL=/models/sentistream-minilm-3class.pt \
    SENTISTREAM_STATE_DIR=/state

CMD ["python", "-m", "pipeline"]
