//! A real IMAP server for the tests: Debian's Dovecot (`dovecot-imapd`), started on
//! 127.0.0.1 with a private config in a temporary folder (passwd-file users, maildir, no
//! TLS, plaintext login allowed) and stopped when dropped. Mail is delivered by IMAP
//! APPEND, as another client would. Only built into tests marked for `cfg(imap_tests)`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_imap::Session;
use futures_util::TryStreamExt;
use tokio::net::TcpStream;

use crate::support::free_port;

/// The mailbox user and password the tests configure.
pub const USER: &str = "support";
pub const PASSWORD: &str = "imap-Pa55word-never-logged";

pub struct Dovecot {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM, so the master stops its login, auth and imap processes with it.
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("dovecot.log"));
            eprintln!("--- dovecot log ---\n{}", log.unwrap_or_default());
        }
    }
}

fn binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/dovecot");
    if sbin.is_file() {
        sbin
    } else {
        PathBuf::from("dovecot")
    }
}

impl Dovecot {
    /// Starts Dovecot and waits for its greeting.
    pub async fn start() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        // Dovecot's unprivileged processes read the config and users and reach the mail.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        // Dovecot refuses root for its login processes and for mail users: as root, the
        // mail belongs to nobody and the package's own users run the rest.
        let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
        let as_root = uid.is_root();
        let (mail_uid, mail_gid) = if as_root {
            (65534, 65534)
        } else {
            (uid.as_raw(), gid.as_raw())
        };
        if as_root {
            std::os::unix::fs::chown(root.join("mail"), Some(mail_uid), Some(mail_gid)).unwrap();
        }
        let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
        let (login_user, internal_user, internal_group) = if as_root {
            (
                "dovenull".to_owned(),
                "dovecot".to_owned(),
                "dovecot".to_owned(),
            )
        } else {
            let group =
                String::from_utf8(Command::new("id").arg("-gn").output().unwrap().stdout).unwrap();
            (me.clone(), me, group.trim().to_owned())
        };
        std::fs::write(
            root.join("passwd"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{mail_uid}:{mail_gid}::{}::\n",
                root.join("mail").join(USER).display()
            ),
        )
        .unwrap();
        let port = free_port();
        let r = root.display();
        let config = format!(
            r#"
protocols = imap
listen = 127.0.0.1
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{r}/mail/%u
login_trusted_networks = 127.0.0.0/8
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = {r}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"#
        );
        std::fs::write(root.join("dovecot.conf"), config).unwrap();
        let child = Command::new(binary())
            .args(["-F", "-c"])
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot starts");
        let dovecot = Self { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while dovecot.try_login().await.is_none() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not let the test user in within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        dovecot
    }

    /// The daemon's `[channels.<id>.imap]` keys for this server.
    pub fn imap_block(&self, channel: &str, extra: &str) -> String {
        format!(
            "[channels.{channel}.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             username = \"{USER}\"\npassword = \"{PASSWORD}\"\n{extra}\n",
            self.port
        )
    }

    async fn try_login(&self) -> Option<Session<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.ok()??;
        client.login(USER, PASSWORD).await.ok()
    }

    async fn session(&self) -> Session<TcpStream> {
        self.try_login().await.expect("the test logs in to dovecot")
    }

    /// Delivers `raw` into `folder`, as a mail client or an MTA would.
    pub async fn append(&self, folder: &str, raw: &str) {
        let mut session = self.session().await;
        session
            .append(folder, None, None, raw.as_bytes())
            .await
            .expect("APPEND");
        let _ = session.logout().await;
    }

    /// Delivers `raw` already flagged `\Seen`, as mail a person has read.
    pub async fn append_seen(&self, folder: &str, raw: &str) {
        let mut session = self.session().await;
        session
            .append(folder, Some("(\\Seen)"), None, raw.as_bytes())
            .await
            .expect("APPEND");
        let _ = session.logout().await;
    }

    pub async fn create(&self, folder: &str) {
        let mut session = self.session().await;
        session.create(folder).await.expect("CREATE");
        let _ = session.logout().await;
    }

    pub async fn delete(&self, folder: &str) {
        let mut session = self.session().await;
        session.delete(folder).await.expect("DELETE");
        let _ = session.logout().await;
    }

    /// The folder's UIDVALIDITY.
    pub async fn uidvalidity(&self, folder: &str) -> u32 {
        let mut session = self.session().await;
        let mailbox = session.examine(folder).await.expect("EXAMINE");
        let _ = session.logout().await;
        mailbox.uid_validity.expect("UIDVALIDITY")
    }

    /// Each message of `folder` as (UID, whether it is flagged \Seen), in UID order.
    pub async fn messages(&self, folder: &str) -> Vec<(u32, bool)> {
        let mut session = self.session().await;
        session.examine(folder).await.expect("EXAMINE");
        let fetches: Vec<_> = session
            .uid_fetch("1:*", "(UID FLAGS)")
            .await
            .expect("UID FETCH")
            .try_collect()
            .await
            .unwrap_or_default();
        let mut found: Vec<(u32, bool)> = fetches
            .iter()
            .filter_map(|f| {
                let seen = f
                    .flags()
                    .any(|flag| matches!(flag, async_imap::types::Flag::Seen));
                Some((f.uid?, seen))
            })
            .collect();
        drop(fetches);
        let _ = session.logout().await;
        found.sort_unstable();
        found
    }
}

/// A plain-text e-mail from `from`, with this Message-ID and optional In-Reply-To.
pub fn mail(from: &str, id: &str, in_reply_to: Option<&str>, text: &str) -> String {
    let reply = in_reply_to
        .map(|r| format!("In-Reply-To: <{r}>\r\nReferences: <{r}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: Ana <{from}>\r\nTo: support@example.com\r\nSubject: Re: your parcel\r\n\
         Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{id}>\r\n{reply}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    )
}
