# Thin wrappers around the go command; nothing but Go needs to be installed
# (docker only for `make docker`).

# Pinned tools, run through the module proxy so nothing is preinstalled.
STATICCHECK := go run honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The race detector needs cgo (a C compiler). Without one, `go env
# CGO_ENABLED` is 0 and the tests run without -race rather than fail.
RACE = $(if $(filter 1,$(shell go env CGO_ENABLED)),-race,)

# The build the Dockerfile runs; dockerfile-check checks they agree.
STATIC_BUILD := CGO_ENABLED=0 go build -trimpath -ldflags "-s -w"

# go.mod's go line, e.g. 1.26.8: the Go image `make docker` builds with.
GO_VERSION = $(shell go list -m -f '{{.GoVersion}}')
IMAGE ?= jetsnap:dev

.PHONY: run demo test test-faults bench lint build docker dockerfile-check

## run: start jetsnap; with NATS_URL unset, an embedded nats-server keeps its data in ./data
run:
	go run ./cmd/jetsnap run

## demo: publish events for account and cart actors and print a snapshot
demo:
	go run ./cmd/jetsnap demo

## test: every test, with the race detector when cgo is available
test:
	@if [ -z "$(RACE)" ]; then echo "note: cgo is off (no C compiler?), running the tests without -race"; fi
	go test $(RACE) -timeout 10m ./...
	@# Under -race the hostile-reducer test, which measures time and memory,
	@# is skipped, as are the tests that measure the heap after folds: here
	@# they run as meant. (The heaviest pipeline tests, smaller under -race,
	@# run at full size in test-faults, which builds without -race anyway.)
	$(if $(RACE),go test -count=1 -timeout 10m -run 'TestHostileReducers|TestLongFoldMemory|TestIdleRealmMemory' ./scripting/,)

## test-faults: the reliability suite: jetsnap as a real process killed with -9, nats-server outages
## of 10 s and 150 s, redeliveries, duplicates, two replicas; and the heaviest pipeline tests at
## the full size that -race scales down; about 6 minutes
## (FAULTS_FLAGS=-short: one outage of 4 s, fewer actors and kills; about 1.5 minutes)
test-faults:
	bash -o pipefail -c "go test -tags faults -run 'Fault|TestLag|TestManyActors|TestRestart|TestLongLivedActor' -count=1 $(FAULTS_FLAGS) -timeout 20m -v ./snapshotter/ 2>&1 | grep -E '^(=== RUN|--- |\s+\w+_test.go|PASS|FAIL|ok|panic)'"

## bench: jetsnap's own benchmark
bench:
	go run ./cmd/jetsnap bench

## lint: gofmt, go vet and staticcheck
lint:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt -w these files:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...

## build: a static binary in bin/jetsnap
build:
	$(STATIC_BUILD) -o bin/jetsnap ./cmd/jetsnap

## docker: build the container image $(IMAGE) with go.mod's Go version
docker:
	docker build --build-arg GO_VERSION=$(GO_VERSION) -t $(IMAGE) .

## dockerfile-check: run the Dockerfile's build steps without Docker and check the binary is static
dockerfile-check:
	@grep -qF '$(STATIC_BUILD) -o /out/jetsnap ./cmd/jetsnap' Dockerfile || \
		{ echo 'Dockerfile does not build with: $(STATIC_BUILD) -o /out/jetsnap ./cmd/jetsnap'; exit 1; }
	@want=$$(echo "$(GO_VERSION)" | cut -d. -f1,2); grep -qE "^ARG GO_VERSION=$$want(\.[0-9]+)?$$" Dockerfile || \
		{ echo "Dockerfile's default GO_VERSION is not go.mod's Go $$want"; exit 1; }
	@test -d scripts || { echo "scripts/ is missing: the image copies it to /scripts"; exit 1; }
	go mod download
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	echo 'GOOS=linux $(STATIC_BUILD) -o $$tmp/jetsnap ./cmd/jetsnap' && \
	GOOS=linux $(STATIC_BUILD) -o "$$tmp/jetsnap" ./cmd/jetsnap && \
	go version -m "$$tmp/jetsnap" | awk -F'\t' '$$2 == "build" { print $$3 }' > "$$tmp/settings" && \
	for want in CGO_ENABLED=0 GOOS=linux -trimpath=true; do \
		grep -qxF -e "$$want" "$$tmp/settings" || { echo "binary lacks build setting $$want; it has:"; cat "$$tmp/settings"; exit 1; }; \
	done && \
	if go tool nm "$$tmp/jetsnap" > /dev/null 2>&1; then echo "binary has a symbol table: -ldflags \"-s -w\" missing"; exit 1; fi && \
	if command -v file > /dev/null; then file "$$tmp/jetsnap" | grep -q 'statically linked' || { file "$$tmp/jetsnap"; exit 1; }; fi && \
	echo "ok: static, stripped linux binary of $$(wc -c < "$$tmp/jetsnap") bytes"
