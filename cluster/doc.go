// Package cluster holds the cluster tests of alipay_notify: several Caddy
// instances, built with the redis storage module
// (github.com/pberkel/caddy-storage-redis), sharing one Redis on 127.0.0.1.
//
// It is a module of its own so that the redis storage stays out of the
// plugin's go.mod. The harness is in harness_test.go; run everything with
// run-tests.sh (it installs redis-server when missing). See README.md.
package cluster
