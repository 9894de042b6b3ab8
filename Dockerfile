# syntax=docker/dockerfile:1
# One image for the three processes (fraud_service, wallet_service, gateway); compose picks
# the process with `command`. The gRPC stubs in gen/ are not committed, so they are generated
# here, in a throw-away stage that has grpcio-tools, exactly as `make proto` does.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS stubs
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-cache-dir --disable-pip-version-check -c requirements.lock grpcio-tools
COPY protos/ protos/
RUN mkdir -p gen \
 && python -m grpc_tools.protoc -I protos --python_out=gen --grpc_python_out=gen \
        protos/wallet/v1/wallet.proto protos/fraud/v1/fraud.proto \
 && for d in wallet wallet/v1 fraud fraud/v1; do touch "gen/$d/__init__.py"; done

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app:/app/gen
WORKDIR /app
# Runtime dependencies only (pyproject's [project].dependencies), every version pinned by the lock.
COPY requirements.lock pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.txt \
 && pip install -r /tmp/runtime.txt -c requirements.lock \
 && rm /tmp/runtime.txt
COPY --from=stubs /src/gen/ gen/
COPY common/ common/
COPY fraud_service/ fraud_service/
COPY wallet_service/ wallet_service/
COPY gateway/ gateway/
COPY wallet_client/ wallet_client/
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin wallet \
 && mkdir -p /app/data && chown wallet /app/data
USER wallet
# Every process drains in-flight calls on SIGTERM and exits 0.
STOPSIGNAL SIGTERM
EXPOSE 50051 50052 5000
CMD ["python", "-m", "wallet_service"]
