# jetsnap as a small, static, non-root image. `make docker` builds it with
# go.mod's exact Go version; without Docker, `make dockerfile-check` runs the
# same build and checks the binary is static.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/jetsnap ./cmd/jetsnap
# The embedded server's store when NATS_URL is unset, writable by nonroot.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jetsnap /jetsnap
COPY scripts/ /scripts/
COPY --from=build --chown=65532:65532 /out/data /data
ENV JETSNAP_SCRIPTS_DIR=/scripts JETSNAP_DATA_DIR=/data
USER nonroot
EXPOSE 9464
ENTRYPOINT ["/jetsnap", "run"]
