// Package deploytest proves the container deployment the way operators run it: the dislog image
// (make image), the three-server cluster of deploy/compose/compose.yaml on a private Docker
// network, each server its own host, and a test process on the Docker host reaching them over
// the network with mutual TLS.
//
// While an idempotent producer writes without pause, the test kills the leader (docker kill) and
// starts it again, cuts a follower off the network for 10 s, restarts every server one at a time
// (no produce may fail), and replaces a server with an empty volume, which must rejoin and catch
// up. Then every acknowledged record must be read back once, at its offset, from each server.
//
// It needs a Docker Engine with Compose and the images, so it runs only when DISLOG_DEPLOY_TEST=1,
// which make test-deploy sets after building them (make test runs that when Docker answers):
//
//	make test-deploy
package deploytest
