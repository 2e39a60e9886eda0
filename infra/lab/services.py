"""Real services on the victim: nginx (web site with login pages), OpenSSH (password logins),
dnsmasq (the lab zone) and iodined (DNS tunnel end point). Each runs inside the victim namespace
from its own config, pid and log files under a temporary directory, so nothing system-wide is
reconfigured except the lab's test user (sshd needs a real account to check passwords against).

Optional services start only while a benign activity needs them (want()): nginx with TLS on
443, mosquitto (MQTT 1883/8883), chronyd (NTP), opentracker plus an aria2c seeder (BitTorrent),
minidlna (UPnP/SSDP), large files for bulk transfers, WireGuard (wireguard-go) and OpenVPN
(static key, UDP) end points. Captures of attacks with the default background see the same
victim as before: nothing new listens and nothing new announces itself.
"""
import hashlib
import os
import random
import signal
import subprocess
import time

from netns import sh

NGINX_CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {d}/nginx-tmp/body;
    proxy_temp_path {d}/nginx-tmp/proxy;
    fastcgi_temp_path {d}/nginx-tmp/fastcgi;
    uwsgi_temp_path {d}/nginx-tmp/uwsgi;
    scgi_temp_path {d}/nginx-tmp/scgi;
    types {{ text/html html; text/css css; application/javascript js; image/png png;
             application/octet-stream bin; }}
    server {{
        listen {ip}:80 backlog=4096;
        server_name www.{zone};
        root {d}/www;
        # Login paths answer like a site rejecting bad credentials: brute-force and benign
        # typos both see 401/403, a correct basic-auth login to /admin sees 200.
        location = /login {{ return 401; }}
        location = /wp-login.php {{ return 403; }}
        location /admin {{ auth_basic "lab"; auth_basic_user_file {d}/htpasswd; }}
        location /api/ {{ default_type application/json; return 200 '{{"ok":true}}'; }}
        # slowhttptest -B posts a slow body here: nginx must read the whole body before it
        # proxies the request, so every slow POST holds a connection (a bare `return` would not)
        location = /form {{ client_max_body_size 10m; proxy_pass http://127.0.0.1:8081; }}
        # bulk uploads: a sync client PUTs a file and DELETEs it again (WebDAV, stored on disk);
        # a form upload POSTs multipart data that the sink behind nginx reads and drops
        location /upload/ {{ root {d}/uploads; dav_methods PUT DELETE; create_full_put_path on;
                             client_max_body_size 200m; }}
        location = /upload {{ client_max_body_size 200m; proxy_pass http://127.0.0.1:8081; }}
    }}
    server {{ listen 127.0.0.1:8081; client_max_body_size 200m; location / {{ return 200 "thanks\n"; }} }}
}}
"""

SSHD_CONF = """\
{ports}
ListenAddress {ip}
HostKey {d}/ssh_host_ed25519_key
PidFile {d}/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
# UsePAM off: sshd checks /etc/shadow itself, no PAM session modules that expect systemd
UsePAM no
PermitRootLogin no
AllowUsers {user}
# hydra opens many connections at once; the default 10:30:100 would refuse most of them,
# which is also realistic, so keep it moderate rather than unlimited
MaxStartups 60:30:120
MaxAuthTries {max_auth_tries}
LoginGraceTime 20
UseDNS no
Subsystem sftp internal-sftp
"""

PAGES = ["index.html", "about.html", "contact.html", "products.html", "blog.html"] + \
        [f"news/{i}.html" for i in range(1, 21)] + [f"docs/page{i}.html" for i in range(1, 11)]
ASSETS = ["static/app.js", "static/site.css"] + [f"img/photo{i}.png" for i in range(1, 9)]
LARGE = {"files/report.bin": 1 << 20, "files/dataset.bin": 5 << 20, "files/video.bin": 12 << 20}

# Ordinary names in the lab zone; benign DNS picks among them (plus a few that do not exist).
HOSTNAMES = ["www", "mail", "smtp", "imap", "ns1", "ns2", "vpn", "intranet", "wiki", "git", "ci",
             "jira", "files", "backup", "db", "db-replica", "cache", "api", "cdn", "static", "auth",
             "sso", "ldap", "printer", "nas", "monitor", "grafana", "logs", "proxy", "shop"]

# Names of the victim itself for the newer activities: image/asset shards (a browser opens up to
# six connections per host name, so a page spread over five names loads over many in parallel),
# the push/MQTT end points, the BitTorrent tracker, the time server, the upload host.
SHARDS = ["img1", "img2", "img3", "img4", "assets"]
VICTIM_NAMES = SHARDS + ["push", "mqtt", "tracker", "time", "upload", "media"]
# Many distinct names for DNS bursts (browser prefetch, crawlers): <prefix><n>.<zone>.
BURST_PREFIXES = ["img", "static", "cdn", "api", "assets", "media", "edge", "video", "ads", "track",
                  "s", "m", "fonts", "login", "cache", "news", "shop", "blog", "app", "files"]
BURST_NAMES = [f"{p}{n}" for p in BURST_PREFIXES for n in range(1, 31)]  # 600 names
# Aliases (CNAME answers) as CDNs hand them out.
CNAMES = {f"edge-cache{n}": f"img{n % 4 + 1}" for n in range(1, 11)}

# A gallery page references 50+ assets (images, style sheets, scripts) spread over SHARDS.
GALLERY = [f"gallery/{i}.html" for i in range(1, 5)]
GALLERY_IMAGES = [f"gallery/img/{j}.png" for j in range(1, 81)]
GALLERY_CSS = [f"gallery/css/{k}.css" for k in range(1, 4)]
GALLERY_JS = [f"gallery/js/{k}.js" for k in range(1, 5)]
# Large files for bulk transfers (created only while the "bulk" service is wanted).
BULK = {"files/backup-2024.tar": 24 << 20, "files/vm-image.qcow2": 48 << 20}
# BitTorrent payloads the victim seeds (name -> bytes); each gets a .torrent on the web site.
TORRENTS = {"lab-photos-2024.tar": 12 << 20, "debian-lab-netinst.iso": 24 << 20, "dataset-v2.zip": 6 << 20}

OPTIONAL = ("tls", "mqtt", "ntp", "torrent", "ssdp", "bulk", "wireguard", "openvpn")

# nginx with TLS (HTTP/2 by ALPN) for the long-lived TLS connections and the browser. Idle
# keep-alive connections live for minutes, like a push channel or a long-polling web app.
NGINX_TLS_CONF = """\
worker_processes 1;
worker_rlimit_nofile 8192;
pid {d}/nginx-tls.pid;
error_log {d}/nginx-tls-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/nginx-tls-access.log;
    client_body_temp_path {d}/nginx-tls-tmp/body;
    proxy_temp_path {d}/nginx-tls-tmp/proxy;
    fastcgi_temp_path {d}/nginx-tls-tmp/fastcgi;
    uwsgi_temp_path {d}/nginx-tls-tmp/uwsgi;
    scgi_temp_path {d}/nginx-tls-tmp/scgi;
    types {{ text/html html; text/css css; application/javascript js; image/png png;
             application/octet-stream bin; }}
    keepalive_timeout 300s;
    keepalive_requests 100000;
    ssl_session_cache shared:labtls:4m;
    server {{
        listen {ip}:443 ssl http2 backlog=4096;
        server_name www.{zone} *.{zone};
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {d}/www;
        location /api/ {{ default_type application/json; return 200 '{{"ok":true}}'; }}
    }}
}}
"""

MOSQUITTO_CONF = """\
persistence false
log_dest file {d}/mosquitto.log
pid_file {d}/mosquitto.pid
user root
allow_anonymous true
listener 1883 {ip}
listener 8883 {ip}
certfile {crt}
keyfile {key}
"""

# chronyd without control of the clock (-x): it serves its own time as a local stratum-8 source,
# to the lab and to clients coming through a VPN tunnel (172.30/172.31).
# cmdport 0 and bindcmdaddress / turn off the command sockets, which would be shared by every
# chronyd on the machine.
CHRONY_SERVER_CONF = """\
pidfile {d}/chronyd.pid
local stratum 8
allow all
bindaddress {ip}
port 123
cmdport 0
bindcmdaddress /
"""

MINIDLNA_CONF = """\
media_dir=A,{dir}/media/music
media_dir=P,{dir}/media/photos
db_dir={dir}/db
log_dir={dir}
log_level=general,artwork,database,inotify,scanner,metadata,http,ssdp,tivo=warn
network_interface=eth0
port={port}
friendly_name={name}
serial={serial}
model_number=1
inotify=no
notify_interval={notify}
"""


class Services:
    def __init__(self, lab, workdir, cfg):
        self.lab, self.d, self.cfg = lab, workdir, cfg
        self.zone = cfg.get("zone", "lab.nta")
        self.tunnel_domain = cfg.get("tunnel_domain", f"t.{self.zone}")
        self.tunnel_password = cfg.get("tunnel_password", "labtunnel")
        self.tunnel_net = cfg.get("tunnel_net", "10.78.0.1/27")
        self.user = cfg.get("ssh_user", "ntalab")
        self.password = cfg.get("ssh_password", "Winter2024!")
        self.ssh_ports = cfg.get("ssh_ports", [22])
        self.web_user, self.web_password = "admin", cfg.get("web_password", "s3cret")
        self.hosts_map = {}
        self.procs = {}
        self.optional = {}  # wanted optional service -> its processes
        self.wg, self.ovpn = None, None  # tunnel keys and addresses, for the clients

    # ---- set-up helpers -----------------------------------------------------------------------
    def ensure_user(self):
        """The one system-wide change: a local account for sshd password logins (idempotent)."""
        if sh("id", self.user, check=False).returncode != 0:
            sh("useradd", "-m", "-s", "/bin/bash", self.user)
        subprocess.run(["chpasswd"], input=f"{self.user}:{self.password}\n", text=True, check=True)
        home = f"/home/{self.user}"
        os.makedirs(f"{home}/work", exist_ok=True)
        with open(f"{home}/work/notes.txt", "w") as f:
            f.write("lab notes\n" * 200)
        with open(f"{home}/work/data.bin", "wb") as f:
            f.write(os.urandom(512 * 1024))  # what benign scp downloads
        sh("chown", "-R", f"{self.user}:{self.user}", f"{home}/work")

    def write_site(self, rng):
        www = f"{self.d}/www"
        for p in PAGES:
            os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
            body = "".join(f"<p>{rng.random():.12f} lorem ipsum dolor sit amet</p>\n"
                           for _ in range(rng.randint(20, 400)))
            with open(f"{www}/{p}", "w") as f:
                f.write(f"<html><head><title>{p}</title></head><body>{body}</body></html>\n")
        for p in ASSETS:
            os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
            with open(f"{www}/{p}", "wb") as f:
                f.write(os.urandom(rng.randint(2_000, 200_000)))
        for p, size in LARGE.items():
            os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
            with open(f"{www}/{p}", "wb") as f:
                f.write(os.urandom(size))
        self.write_gallery(rng)
        pw = sh("openssl", "passwd", "-apr1", self.web_password).stdout.strip()
        with open(f"{self.d}/htpasswd", "w") as f:
            f.write(f"{self.web_user}:{pw}\n")

    def write_gallery(self, rng):
        """Pages with 50-80 assets each; asset URLs are scheme-relative and spread over the shard
        names, so a browser fetches them over several parallel connections (HTTP/1.1) or
        streams (HTTP/2) per name, whichever scheme the page came over."""
        www = f"{self.d}/www"
        for p in GALLERY_IMAGES + GALLERY_CSS + GALLERY_JS:
            os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
            with open(f"{www}/{p}", "wb") as f:
                if p.endswith(".png"):
                    f.write(os.urandom(rng.randint(1_500, 60_000)))
                elif p.endswith(".css"):
                    f.write(("".join(f".c{i} {{ margin: {i}px; color: #{rng.getrandbits(24):06x}; }}\n"
                                     for i in range(rng.randint(50, 800)))).encode())
                else:
                    lines = (f"var v{i} = {rng.random()!r};\n" for i in range(rng.randint(100, 3000)))
                    f.write("".join(lines).encode())
        url = lambda p: f"//{rng.choice(SHARDS)}.{self.zone}/{p}"
        for page in GALLERY:
            css = "".join(f'<link rel="stylesheet" href="{url(c)}">\n' for c in GALLERY_CSS)
            js = "".join(f'<script src="{url(j)}"></script>\n' for j in GALLERY_JS)
            imgs = "".join(f'<img src="{url(i)}" width="120" height="90">\n'
                           for i in rng.sample(GALLERY_IMAGES, rng.randint(50, 72)))
            with open(f"{www}/{page}", "w") as f:
                f.write(f"<!doctype html><html><head><title>{page}</title>\n{css}</head><body>\n"
                        f"<h1>Gallery</h1>\n{imgs}{js}</body></html>\n")

    def write_zone(self):
        """dnsmasq answers authoritatively (local=) for the lab zone from a hosts file, with MX
        and TXT records, and forwards the tunnel sub-domain to iodined on the second address
        so a tunnel can go either straight to iodined or through the resolver."""
        v = self.lab.victim
        base = self.lab.subnet
        for i, name in enumerate(HOSTNAMES):
            self.hosts_map[f"{name}.{self.zone}"] = f"{base}.{100 + i}"
        self.hosts_map[f"www.{self.zone}"] = v.ip
        self.hosts_map[f"ns1.{self.zone}"] = v.ip
        self.hosts_map[f"ns2.{self.zone}"] = v.extra_ips[0]
        for name in VICTIM_NAMES:
            self.hosts_map[f"{name}.{self.zone}"] = v.ip
        for i, name in enumerate(BURST_NAMES):
            self.hosts_map.setdefault(f"{name}.{self.zone}", f"{base}.{100 + i % 150}")
        with open(f"{self.d}/lab.hosts", "w") as f:
            for name, ip in self.hosts_map.items():
                f.write(f"{ip} {name}\n")
        conf = [
            "no-resolv", "no-hosts", "bind-interfaces", "no-daemon", "log-queries",
            f"listen-address={v.ip}", f"addn-hosts={self.d}/lab.hosts",
            f"local=/{self.zone}/", f"domain={self.zone}",
            f"server=/{self.tunnel_domain}/{v.extra_ips[0]}",
            f"mx-host={self.zone},mail.{self.zone},10",
            f'txt-record={self.zone},"v=spf1 mx -all"',
            *(f"cname={a}.{self.zone},{t}.{self.zone}" for a, t in CNAMES.items()),
            f"pid-file={self.d}/dnsmasq.pid", f"log-facility={self.d}/dnsmasq.log",
            "user=root", "cache-size=1000",
        ]
        with open(f"{self.d}/dnsmasq.conf", "w") as f:
            f.write("\n".join(conf) + "\n")

    # ---- start / stop -------------------------------------------------------------------------
    def start(self, seed=0):
        rng = random.Random(seed)
        v, d = self.lab.victim, self.d
        os.chmod(d, 0o755)  # nginx workers run as nobody and must read the site below it
        os.makedirs(f"{d}/nginx-tmp", exist_ok=True)
        os.makedirs(f"{d}/uploads", exist_ok=True)
        os.chmod(f"{d}/uploads", 0o777)  # nginx workers (nobody) store PUT uploads here
        self.ensure_user()
        self.write_site(rng)
        self.write_zone()
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(d=d, ip=v.ip, zone=self.zone))
        with open(f"{d}/sshd_config", "w") as f:
            # sshd also listens on non-standard ports: guessing against them must be caught by
            # what the service speaks, not by its port
            ports = "\n".join(f"Port {p}" for p in self.ssh_ports)
            f.write(SSHD_CONF.format(d=d, ip=v.ip, user=self.user, ports=ports,
                                       max_auth_tries=self.cfg.get("ssh_max_auth_tries", 6)))
        if not os.path.exists(f"{d}/ssh_host_ed25519_key"):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/ssh_host_ed25519_key")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory

        L = self.lab
        self.procs["nginx"] = L.spawn(v, ["nginx", "-p", d, "-e", f"{d}/nginx-error.log",
                                          "-c", f"{d}/nginx.conf", "-g", "daemon off;"],
                                      log=f"{d}/nginx.out")
        self.procs["sshd"] = L.spawn(v, ["/usr/sbin/sshd", "-D", "-f", f"{d}/sshd_config",
                                         "-E", f"{d}/sshd.log"], log=f"{d}/sshd.out")
        self.procs["dnsmasq"] = L.spawn(v, ["dnsmasq", f"--conf-file={d}/dnsmasq.conf"],
                                        log=f"{d}/dnsmasq.out")
        # -c: accept a session's queries from changing source addresses (they arrive from the
        # resolver when the tunnel goes through dnsmasq); -f foreground; -D: log a little.
        self.procs["iodined"] = L.spawn(v, ["iodined", "-f", "-c", "-D", "-l", v.extra_ips[0],
                                            "-P", self.tunnel_password, self.tunnel_net,
                                            self.tunnel_domain], log=f"{d}/iodined.log")
        self.wait_ready()

    def wait_ready(self, timeout=15):
        v = self.lab.victim
        checks = {
            "nginx": lambda: self._tcp_ok(v, 80),
            "sshd": lambda: self._tcp_ok(v, 22),
            "dnsmasq": lambda: sh(*self.lab.clients[0].cmd(
                "dig", "+short", "+time=1", "+tries=1", f"@{v.ip}", f"www.{self.zone}"),
                check=False).stdout.strip() == v.ip,
            "iodined": lambda: "dns0" in sh("ip", "-n", v.ns, "link", check=False).stdout,
        }
        deadline = time.time() + timeout
        for name, ok in checks.items():
            while not ok():
                p = self.procs[name]
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited ({p.returncode}); see logs in {self.d}")
                if time.time() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout}s; see logs in {self.d}")
                time.sleep(0.3)

    def _tcp_ok(self, host, port):
        probe = f"import socket; socket.create_connection(('{host.ip}', {port}), 1).close()"
        return sh(*self.lab.clients[0].cmd("python3", "-c", probe), check=False).returncode == 0

    # ---- optional services (started while an activity needs them) -----------------------------
    def want(self, names):
        """Runs exactly the optional services in `names` (plus the core ones, always): starts the
        missing ones (and waits until they answer), stops the others."""
        names = set(names)
        if names - set(OPTIONAL):
            raise ValueError(f"unknown services: {sorted(names - set(OPTIONAL))}")
        for name in OPTIONAL:
            if name in self.optional and name not in names:
                for p in self.optional.pop(name):
                    self.lab.stop(p, signal.SIGTERM)
                getattr(self, f"_stopped_{name}", lambda: None)()
        for name in OPTIONAL:
            if name in names and name not in self.optional:
                self.optional[name] = []
                getattr(self, f"_start_{name}")()

    def _spawn(self, service, argv, log, host=None):
        p = self.lab.spawn(host or self.lab.victim, argv, log=f"{self.d}/{log}")
        self.optional[service].append(p)
        return p

    def _until(self, what, ok, procs, timeout=20):
        deadline = time.time() + timeout
        while not ok():
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{what} exited ({p.returncode}); see logs in {self.d}")
            if time.time() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout}s; see logs in {self.d}")
            time.sleep(0.3)

    def cert(self):
        """A self-signed certificate for every name of the zone (nginx on 443, mosquitto on 8883);
        clients trust it as their CA file, like an internal PKI."""
        crt, key = f"{self.d}/lab-cert.pem", f"{self.d}/lab-key.pem"
        if not os.path.exists(crt):
            sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
               "-days", "30", "-keyout", key, "-out", crt, "-subj", f"/CN=www.{self.zone}",
               "-addext", f"subjectAltName=DNS:*.{self.zone},DNS:{self.zone}")
            os.chmod(key, 0o644)  # a throwaway key; readable whichever user a server drops to
        return crt, key

    def _start_tls(self):
        d, v = self.d, self.lab.victim
        crt, key = self.cert()
        os.makedirs(f"{d}/nginx-tls-tmp", exist_ok=True)
        with open(f"{d}/nginx-tls.conf", "w") as f:
            f.write(NGINX_TLS_CONF.format(d=d, ip=v.ip, zone=self.zone, crt=crt, key=key))
        p = self._spawn("tls", ["nginx", "-p", d, "-e", f"{d}/nginx-tls-error.log", "-c", f"{d}/nginx-tls.conf",
                                "-g", "daemon off;"], "nginx-tls.out")
        self._until("nginx (TLS)", lambda: self._tcp_ok(v, 443), [p])

    def _start_mqtt(self):
        d, v = self.d, self.lab.victim
        crt, key = self.cert()
        with open(f"{d}/mosquitto.conf", "w") as f:
            f.write(MOSQUITTO_CONF.format(d=d, ip=v.ip, crt=crt, key=key))
        p = self._spawn("mqtt", ["mosquitto", "-c", f"{d}/mosquitto.conf"], "mosquitto.out")
        self._until("mosquitto", lambda: self._tcp_ok(v, 1883) and self._tcp_ok(v, 8883), [p])

    def _start_ntp(self):
        d, v = self.d, self.lab.victim
        with open(f"{d}/chrony-server.conf", "w") as f:
            f.write(CHRONY_SERVER_CONF.format(d=d, ip=v.ip))
        p = self._spawn("ntp", ["chronyd", "-x", "-d", "-u", "root", "-f", f"{d}/chrony-server.conf"], "chronyd.log")
        self._until("chronyd", lambda: ":123 " in sh("ip", "netns", "exec", v.ns, "ss", "-lun").stdout, [p])

    def _start_torrent(self):
        """opentracker on :6969 and :2710 (HTTP announces; UDP 6969 too) and an aria2c seeding
        TORRENTS; the .torrent files are on the web site (/torrents/), where clients fetch them."""
        d, v = self.d, self.lab.victim
        tdir, www = f"{d}/torrent", f"{d}/www/torrents"
        if not os.path.isdir(www):
            os.makedirs(tdir, exist_ok=True)
            os.makedirs(www, exist_ok=True)
            for i, (name, size) in enumerate(TORRENTS.items()):
                with open(f"{tdir}/{name}", "wb") as f:
                    f.write(os.urandom(size))
                # HTTP announces (aria2c speaks UDP tracker only with DHT on, and DHT stays off)
                # on the tracker's two ports, as public trackers run 6969 and 2710
                tracker = f"http://tracker.{self.zone}:{2710 if i == 1 else 6969}/announce"
                sh("mktorrent", "-a", tracker, "-l", "18", "-c", "lab swarm", "-o", f"{www}/{name}.torrent",
                   f"{tdir}/{name}")
        os.makedirs(f"{d}/tracker", exist_ok=True)
        tr = self._spawn("torrent", ["opentracker", "-i", v.ip, "-p", "6969", "-p", "2710", "-P", "6969",
                                     "-d", f"{d}/tracker"], "opentracker.log")
        self._until("opentracker", lambda: self._tcp_ok(v, 6969), [tr])
        with open(f"{d}/seed.list", "w") as f:
            f.write("".join(f"{www}/{name}.torrent\n" for name in TORRENTS))
        seeder = self._spawn("torrent", [
            "aria2c", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=true", "--bt-lpd-interface=eth0",
            "--bt-seed-unverified=true", "--seed-ratio=0.0", "--listen-port=6881", "--dir", tdir,
            "--input-file", f"{d}/seed.list", "--max-concurrent-downloads=10", "--max-overall-upload-limit=6M",
            "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn",
            "--auto-save-interval=0", "--save-session-interval=0", "--bt-save-metadata=false"], "aria2-seed.log")
        self._until("aria2c seeder", lambda: self._tcp_ok(v, 6881), [tr, seeder])

    def minidlna_argv(self, host, name, port=8200, notify=30):
        """minidlna (a UPnP media server: SSDP NOTIFY every `notify` s, answers to M-SEARCH, the
        device description and content directory over HTTP) for `host`, with a few small media
        files of its own; returns the command line to run in host's namespace."""
        dir_ = f"{self.d}/minidlna-{host.role}"
        for sub, ext in (("music", "mp3"), ("photos", "jpg")):
            os.makedirs(f"{dir_}/media/{sub}", exist_ok=True)
            for i in range(4):
                with open(f"{dir_}/media/{sub}/track{i}.{ext}", "wb") as f:
                    f.write(os.urandom(4096))
        os.makedirs(f"{dir_}/db", exist_ok=True)
        serial = hashlib.sha1(f"{self.lab.prefix}{host.role}".encode()).hexdigest()[:12]
        with open(f"{dir_}/minidlna.conf", "w") as f:
            f.write(MINIDLNA_CONF.format(dir=dir_, port=port, name=name, serial=serial, notify=notify))
        return ["minidlnad", "-S", "-R", "-f", f"{dir_}/minidlna.conf", "-P", f"{dir_}/minidlna.pid"]

    def _start_ssdp(self):
        v = self.lab.victim
        p = self._spawn("ssdp", self.minidlna_argv(v, "NAS-4F2A9C Media Server", notify=15), "minidlna.out")
        self._until("minidlna", lambda: self._tcp_ok(v, 8200), [p])

    def _start_bulk(self):
        www = f"{self.d}/www"
        for p, size in BULK.items():
            if not os.path.exists(f"{www}/{p}"):
                os.makedirs(os.path.dirname(f"{www}/{p}"), exist_ok=True)
                with open(f"{www}/{p}", "wb") as f:
                    f.write(os.urandom(size))

    def tunnel_ifname(self, kind, host):
        """wireguard-go's control socket is /var/run/wireguard/<ifname>.sock, shared by every
        namespace: names must be unique per lab (prefix) and host. 15 characters at most."""
        tag = hashlib.sha1(f"{self.lab.prefix}".encode()).hexdigest()[:4]
        return f"{kind}{tag}{host.role[0]}{host.role[-1]}"[:15]

    def _start_wireguard(self):
        """wireguard-go on the victim (UDP 51820, tunnel net 172.30.0.0/24, .1); one peer per
        client (.2, .3, ...). Keys are made fresh; the clients' side is in benign.py."""
        v, d = self.lab.victim, self.d
        key = lambda: sh("wg", "genkey").stdout.strip()
        pub = lambda k: subprocess.run(["wg", "pubkey"], input=k, capture_output=True, text=True,
                                       check=True).stdout.strip()
        vkey = key()
        self.wg = {"port": 51820, "victim_pub": pub(vkey), "victim_tunnel_ip": "172.30.0.1", "clients": {}}
        for i, c in enumerate(self.lab.clients):
            k = key()
            with open(f"{d}/wg-{c.role}.key", "w") as f:
                f.write(k + "\n")
            self.wg["clients"][c.role] = {"key_file": f"{d}/wg-{c.role}.key", "pub": pub(k),
                                          "ip": f"172.30.0.{2 + i}", "ifname": self.tunnel_ifname("wg", c)}
        with open(f"{d}/wg-victim.key", "w") as f:
            f.write(vkey + "\n")
        ifname = self.tunnel_ifname("wg", v)
        p = self._spawn("wireguard", ["wireguard-go", "-f", ifname], "wireguard-go.log")
        self._until("wireguard-go", lambda: sh("ip", "-n", v.ns, "link", "show", ifname, check=False).returncode == 0,
                    [p])
        peers = [x for c in self.wg["clients"].values() for x in ("peer", c["pub"], "allowed-ips", f"{c['ip']}/32")]
        sh(*v.cmd("wg", "set", ifname, "private-key", f"{d}/wg-victim.key", "listen-port", self.wg["port"], *peers))
        sh("ip", "-n", v.ns, "addr", "add", "172.30.0.1/24", "dev", ifname)
        sh("ip", "-n", v.ns, "link", "set", ifname, "up")

    def _stopped_wireguard(self):
        self.wg = None

    def _start_openvpn(self):
        """OpenVPN in static-key mode over UDP: one point-to-point server per client on the
        victim (port 1194 + client index, tunnel 172.31.<index>.1 <-> .2)."""
        v, d = self.lab.victim, self.d
        keyfile = f"{d}/openvpn-static.key"
        sh("openvpn", "--genkey", "secret", keyfile)
        self.ovpn = {"key_file": keyfile, "clients": {},
                     "common": ["--proto", "udp", "--dev-type", "tun", "--secret", keyfile, "--cipher", "AES-256-CBC",
                                "--auth", "SHA256", "--ping", "5", "--ping-restart", "60", "--verb", "3"]}
        procs = []
        for i, c in enumerate(self.lab.clients):
            port = 1194 + i
            self.ovpn["clients"][c.role] = {"port": port, "ip": f"172.31.{i}.2", "peer_ip": f"172.31.{i}.1",
                                            "ifname": f"ovpn{i}"}
            procs.append(self._spawn("openvpn", [
                # --float: a client that reconnects (next capture) comes from a new port
                "openvpn", "--local", v.ip, "--lport", port, "--dev", f"ovpn{i}", "--float",
                "--ifconfig", f"172.31.{i}.1", f"172.31.{i}.2", *self.ovpn["common"]], f"openvpn-{c.role}.log"))
        self._until("openvpn", lambda: all(f"ovpn{i}" in sh("ip", "-n", v.ns, "link", check=False).stdout
                                           for i in range(len(self.lab.clients))), procs)

    def _stopped_openvpn(self):
        self.ovpn = None

    def stop(self):
        self.want(())
        for name, p in self.procs.items():
            self.lab.stop(p, signal.SIGTERM)
        self.procs.clear()
