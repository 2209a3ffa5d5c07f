// CoreDNS with only the plugins cluster DNS needs (its documented way of a custom build: the directive list
// and the plugin imports that upstream's plugin.cfg generates), instead of every plugin upstream ships (cloud
// DNS providers and their SDKs, which take most of a full build's time). The order is upstream's.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	dnsserver.Directives = []string{"reload", "ready", "health", "errors", "log", "loop", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
