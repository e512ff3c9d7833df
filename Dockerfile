# The image the Helm chart runs (deploy/helm/cairn: image.repository):
#   docker build -t ghcr.io/cairnhq/cairn:0.1.0 --build-arg VERSION=0.1.0 .
# One static binary on a distroless base, running as the non-root user the
# chart's securityContext expects (65532).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
COPY pkg ./pkg
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/cairn ./cmd/cairn

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cairn /usr/local/bin/cairn
USER 65532:65532
ENTRYPOINT ["cairn"]
