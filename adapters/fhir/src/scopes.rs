//! SMART scopes (App Launch 2.x, and 1.0's `read`/`write` forms): what an app's
//! token lets it do, per resource type and interaction. Scopes only narrow what
//! the app's user may do; the user's own grants and role still apply.

/// A FHIR interaction, as SMART v2 names its permissions (`c r u d s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// `c`: create.
    Create,
    /// `r`: read, vread, history.
    Read,
    /// `u`: update.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search.
    Search,
}

impl Interaction {
    fn letter(self) -> char {
        match self {
            Self::Create => 'c',
            Self::Read => 'r',
            Self::Update => 'u',
            Self::Delete => 'd',
            Self::Search => 's',
        }
    }
}

/// How far a scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// `patient/…`: only the patient in the launch context.
    Patient,
    /// `user/…` or `system/…`: whatever the user may see.
    User,
}

/// One resource scope: its reach, resource type (`*` for all) and permissions.
fn parse(scope: &str) -> Option<(Reach, &str, String)> {
    let (context, rest) = scope.split_once('/')?;
    let reach = match context {
        "patient" => Reach::Patient,
        "user" | "system" => Reach::User,
        _ => return None,
    };
    let (resource, permissions) = rest.split_once('.')?;
    let permissions = match permissions {
        "read" => "rs".to_owned(),
        "write" => "cud".to_owned(),
        "*" => "cruds".to_owned(),
        // v2: a subset of "cruds", in that order (query parameters after `?` are not served).
        v2 if !v2.is_empty() && v2.chars().all(|c| "cruds".contains(c)) && is_ordered(v2) => v2.to_owned(),
        _ => return None,
    };
    Some((reach, resource, permissions))
}

fn is_ordered(permissions: &str) -> bool {
    let positions: Vec<usize> = permissions.chars().filter_map(|c| "cruds".find(c)).collect();
    positions.windows(2).all(|pair| pair[0] < pair[1])
}

/// The widest reach at which the space-separated `scopes` permit `interaction`
/// on `resource_type`; none when no scope does.
pub fn reach(scopes: &str, resource_type: &str, interaction: Interaction) -> Option<Reach> {
    scopes
        .split_whitespace()
        .filter_map(parse)
        .filter(|(_, resource, permissions)| (*resource == "*" || *resource == resource_type) && permissions.contains(interaction.letter()))
        .map(|(reach, _, _)| reach)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_scopes_name_resource_types_and_permissions() {
        let scopes = "launch/patient openid patient/Condition.rs user/Patient.r";
        assert_eq!(reach(scopes, "Condition", Interaction::Search), Some(Reach::Patient));
        assert_eq!(reach(scopes, "Condition", Interaction::Update), None);
        assert_eq!(reach(scopes, "Patient", Interaction::Read), Some(Reach::User));
        assert_eq!(reach(scopes, "Encounter", Interaction::Read), None);
        assert_eq!(reach("user/*.cruds", "Encounter", Interaction::Delete), Some(Reach::User));
        assert_eq!(reach("patient/Condition.sr", "Condition", Interaction::Read), None, "out of order is not a scope");
    }

    #[test]
    fn v1_read_and_write_scopes_are_understood() {
        assert_eq!(reach("patient/*.read", "Encounter", Interaction::Search), Some(Reach::Patient));
        assert_eq!(reach("patient/*.read", "Encounter", Interaction::Update), None);
        assert_eq!(reach("user/Condition.write", "Condition", Interaction::Update), Some(Reach::User));
        assert_eq!(reach("patient/*.read user/*.read", "Patient", Interaction::Read), Some(Reach::User), "the widest wins");
    }
}
