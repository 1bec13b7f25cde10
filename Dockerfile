# Skald's container image: the static `skald` binary (musl) and nothing else, run as a
# non-root user. Build it with `bash scripts/image.sh` (which builds the binary for
# x86_64-unknown-linux-musl first and stages this build context); with no arguments the
# container runs every service on the embedded default, listening on 0.0.0.0:3100 (HTTP) and
# 0.0.0.0:9095 (gRPC), data in the volume /var/skald (deploy/docker/skald.yaml).
#   docker run -p 3100:3100 -v skald-data:/var/skald skald:0.1.0
# Kubernetes: deploy/kubernetes/ (the manifests pass their own -config.file and -target).
FROM scratch
# rootfs.tar is staged by scripts/image.sh: /skald and /etc/skald/skald.yaml owned by root,
# an empty /var/skald owned by 65532 (scratch has no shell to chown it). ADD unpacks it.
ADD rootfs.tar /
USER 65532:65532
WORKDIR /var/skald
VOLUME ["/var/skald"]
EXPOSE 3100 9095 7946/udp
ENTRYPOINT ["/skald"]
CMD ["-config.file=/etc/skald/skald.yaml"]
