FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/settlegraph
COPY pyproject.toml README.md ./
COPY app ./app
COPY models ./models
COPY graphql_schema ./graphql_schema
RUN pip install . && useradd --system --uid 10001 --home /srv/settlegraph settlegraph \
    && chown -R settlegraph /srv/settlegraph
USER settlegraph
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["settlegraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
