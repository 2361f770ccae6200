# parley-xmpp. `make demo` and `make test` bring up a local Prosody (installed from
# apt if missing) on 127.0.0.1:5222 and stop it afterwards if they started it.

.PHONY: demo test chaos soak bench fuzz check build server-start server-stop

demo: ## a short live demo against the local server
	scripts/with-devserver.sh go run ./cmd/parley-xmpp demo

test: ## gofmt, vet, staticcheck and every test (with -race) against the local server
	scripts/with-devserver.sh scripts/check.sh

chaos: ## the chaos suite alone (SEED=n repeats a run's faults)
	scripts/with-devserver.sh go test -race -count=1 -v -run 'TestChaos' ./chaos -chaos.seed=$(or $(SEED),0)

soak: ## a long chaos run: make soak DURATION=30m SEED=n
	scripts/with-devserver.sh go test -count=1 -v -timeout 0 -run 'TestChaos$$' ./chaos -chaos.duration=$(or $(DURATION),10m) -chaos.seed=$(or $(SEED),0)

bench: ## the benchmarks against a freshly reset local Prosody, left running (docs/performance.md); ARGS="--only replay"
	scripts/devserver.sh reset prosody
	go run ./cmd/parley-xmpp bench --transient-muc transient.parley.local $(ARGS)

fuzz: ## every fuzz target, FUZZTIME each (default 60s): make fuzz FUZZTIME=10m
	FUZZTIME=$(or $(FUZZTIME),60s) scripts/fuzz.sh

build:
	go build -buildvcs=true -o bin/parley-xmpp ./cmd/parley-xmpp

server-start: ## start the local dev server and leave it running
	scripts/devserver.sh start

server-stop:
	scripts/devserver.sh stop
