// kafka-entrypoint: the container's PID 1 until it execs the JVM. It fills the broker config from
// /opt/kafka/server.properties.template, formats KRaft storage if /var/lib/kafka/data has no
// meta.properties, then replaces itself with `java ... kafka.Kafka <config> [args...]`.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

const (
	java          = "/opt/java/bin/java"
	classpath     = "/opt/kafka/libs/*"
	templatePath  = "/opt/kafka/server.properties.template"
	configPath    = "/var/lib/kafka/server.properties"
	logDir        = "/var/lib/kafka/data"
	clusterIDPath = "/opt/kafka/cluster-id"
	kafkaUID      = 1000 // owner of /var/lib/kafka; the JVM runs as this user
)

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "kafka-entrypoint: "+format+"\n", a...)
	os.Exit(1)
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func port(key, def string) string {
	v := env(key, def)
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
		fail("%s=%q is not a TCP port", key, v)
	}
	return v
}

// dropPrivileges: started as root (the default, so any volume or --tmpfs on the data directory
// works), hand /var/lib/kafka to the kafka user and become that user.
func dropPrivileges() {
	if os.Getuid() != 0 {
		return
	}
	err := filepath.Walk("/var/lib/kafka", func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && (st.Uid != kafkaUID || st.Gid != kafkaUID) {
			return os.Lchown(path, kafkaUID, kafkaUID)
		}
		return nil
	})
	if err != nil {
		fail("chown /var/lib/kafka: %v", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		fail("setgroups: %v", err)
	}
	if err := syscall.Setgid(kafkaUID); err != nil {
		fail("setgid: %v", err)
	}
	if err := syscall.Setuid(kafkaUID); err != nil {
		fail("setuid: %v", err)
	}
}

func main() {
	dropPrivileges()
	p := port("KAFKA_PORT", "9092")
	defCtl := "9093"
	if p == defCtl {
		defCtl = "9094"
	}
	ctl := port("KAFKA_CONTROLLER_PORT", defCtl)
	if ctl == p {
		fail("KAFKA_PORT and KAFKA_CONTROLLER_PORT are both %s", p)
	}
	vals := map[string]string{
		"NODE_ID":         "1",
		"QUORUM_VOTERS":   "1@127.0.0.1:" + ctl,
		"LISTEN_HOST":     "0.0.0.0",
		"PORT":            p,
		"CONTROLLER_PORT": ctl,
		"ADVERTISED_HOST": env("KAFKA_ADVERTISED_HOST", "127.0.0.1"),
		"LOG_DIR":         logDir,
		"REPLICATION":     "1",
		"MIN_ISR":         "1",
	}
	tpl, err := os.ReadFile(templatePath)
	if err != nil {
		fail("%v", err)
	}
	var missing []string
	cfg := regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`).ReplaceAllStringFunc(string(tpl), func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := vals[name]; ok {
			return v
		}
		missing = append(missing, name)
		return m
	})
	if len(missing) > 0 {
		fail("template %s has placeholders this image does not fill: %s", templatePath, strings.Join(missing, ", "))
	}
	if err := os.WriteFile(configPath, []byte(cfg), 0o644); err != nil {
		fail("%v", err)
	}

	if _, err := os.Stat(logDir + "/meta.properties"); err != nil {
		id := env("KAFKA_CLUSTER_ID", "")
		if id == "" {
			b, err := os.ReadFile(clusterIDPath)
			if err != nil {
				fail("%v", err)
			}
			id = strings.TrimSpace(string(b))
		}
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			fail("%v", err)
		}
		fmt.Fprintf(os.Stderr, "kafka-entrypoint: formatting %s (cluster id %s)\n", logDir, id)
		cmd := exec.Command(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", classpath,
			"kafka.tools.StorageTool", "format", "--cluster-id="+id, "-c", configPath, "--ignore-formatted") // "=": an id may begin with "-"
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fail("formatting %s: %v", logDir, err)
		}
	}

	args := []string{"java"}
	args = append(args, strings.Fields(env("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m"))...)
	args = append(args, "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel="+env("KAFKA_LOG_LEVEL", "info"))
	args = append(args, strings.Fields(env("KAFKA_JVM_OPTS", ""))...)
	args = append(args, "-cp", classpath, "kafka.Kafka", configPath)
	args = append(args, os.Args[1:]...)
	fmt.Fprintf(os.Stderr, "kafka-entrypoint: %s\n", strings.Join(args, " "))
	if err := syscall.Exec(java, args, os.Environ()); err != nil {
		fail("exec %s: %v", java, err)
	}
}
