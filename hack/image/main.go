// Command image writes the kube-vrrp container image as an archive, without a container
// engine: one layer made from a root filesystem tarball, and the image configuration the
// chart relies on (user, PATH, default command). The archive is in the `docker save` format,
// which `docker load`, `podman load`, `ctr images import`, `kind load image-archive` and
// `skopeo copy docker-archive:...` all read.
//
// The layer and the archive are written by go-containerregistry; this program only says what
// goes in them.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// labels collects repeated -label key=value flags.
type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labels) Set(kv string) error {
	key, value, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return fmt.Errorf("label %q is not key=value", kv)
	}
	l[key] = value
	return nil
}

func main() {
	rootfs := flag.String("rootfs", "", "root filesystem as an uncompressed tar (required)")
	tag := flag.String("tag", "", "image reference written into the archive, e.g. ghcr.io/kube-vrrp/kube-vrrp:0.1.0 (required)")
	out := flag.String("out", "", "archive to write (required)")
	user := flag.String("user", "65532:65532", "UID:GID the image runs as")
	cmd := flag.String("cmd", "", "default command, space separated (the chart always sets its own)")
	extra := labels{}
	flag.Var(extra, "label", "image label key=value (repeatable)")
	flag.Parse()
	if *rootfs == "" || *tag == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(*rootfs, *tag, *out, *user, strings.Fields(*cmd), extra); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

// created is SOURCE_DATE_EPOCH when set (reproducible builds), else the Unix epoch: the
// archive of the same root filesystem is then the same bytes.
func created() (time.Time, error) {
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	seconds, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", epoch, err)
	}
	return time.Unix(seconds, 0).UTC(), nil
}

func build(rootfs, tag, out, user string, cmd []string, extra labels) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	when, err := created()
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(rootfs)
	if err != nil {
		return fmt.Errorf("layer from %s: %w", rootfs, err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: when},
			CreatedBy: "hack/image: kube-vrrp-agent, kube-vrrp-operator and their shared libraries",
		},
	})
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	config, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	config = config.DeepCopy()
	config.OS = "linux"
	config.Architecture = runtime.GOARCH
	config.Created = v1.Time{Time: when}
	config.Config.User = user
	config.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	config.Config.Cmd = cmd
	config.Config.WorkingDir = "/"
	config.Config.Labels = extra
	img, err = mutate.ConfigFile(img, config)
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
